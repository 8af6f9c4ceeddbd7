import t from 'tap'
import { WindowBudget } from '../../src/services/budget.js'

t.test('a key spends up to max per window, then waits for the window to end; other keys are untouched', async (t) => {
  const budget = new WindowBudget(2, 10_000)
  t.equal(budget.spend('a', 1_000), 0)
  t.equal(budget.spend('a', 2_000), 0)
  t.equal(budget.spend('a', 2_500), 9, 'refused: 8.5 s of the window left, rounded up')
  t.equal(budget.spend('a', 10_999), 1, 'never less than one second')
  t.equal(budget.spend('b', 3_000), 0, 'another key has its own allowance')
  t.equal(budget.spend('a', 11_000), 0, 'a new window')
  t.equal(budget.spend('a', 11_001), 0)
  t.equal(budget.spend('a', 11_002), 10)
})

t.test('past maxKeys, expired windows go first, then the oldest; a live key keeps its count', async (t) => {
  const budget = new WindowBudget(1, 1_000, 2)
  budget.spend('old', 0)
  budget.spend('live', 500)
  budget.spend('new', 1_200)
  t.equal(budget.size, 2, 'the expired window made room')
  t.equal(budget.spend('live', 1_300), 1, 'still counted')
  budget.spend('newer', 1_400)
  t.equal(budget.size, 2)
  t.equal(budget.spend('live', 1_450), 0, 'the oldest (live) was dropped to make room: it starts afresh')
})
