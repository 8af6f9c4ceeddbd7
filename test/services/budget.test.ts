import t, { type Test } from 'tap'
import { BudgetSync, WindowBudget } from '../../src/services/budget.js'
import { SharedCounters } from '../../src/services/shared-counters.js'
import { freePort, testRedis } from '../helper.js'

t.test('a key spends up to max per window (fixed on the clock), then waits for the window to end; other keys are untouched', async (t) => {
  const budget = new WindowBudget(2, 10_000)
  t.equal(budget.spend('a', 1_000), 0)
  t.equal(budget.spend('a', 2_000), 0)
  t.equal(budget.spend('a', 2_500), 8, 'refused: 7.5 s of the window [0, 10 s) left, rounded up')
  t.equal(budget.spend('a', 9_999), 1, 'never less than one second')
  t.equal(budget.spend('b', 3_000), 0, 'another key has its own allowance')
  t.equal(budget.spend('a', 10_000), 0, 'a new window at the next multiple of the window')
  t.equal(budget.spend('a', 10_001), 0)
  t.equal(budget.spend('a', 10_002), 10)
})

t.test('past maxKeys, expired windows go first, then the oldest; a live key keeps its count', async (t) => {
  const budget = new WindowBudget(1, 1_000, 2)
  budget.spend('old', 0)
  budget.spend('live', 1_100)
  budget.spend('new', 1_200)
  t.equal(budget.size, 2, 'the expired window made room')
  t.equal(budget.spend('live', 1_300), 1, 'still counted')
  budget.spend('newer', 1_400)
  t.equal(budget.size, 2)
  t.equal(budget.spend('live', 1_450), 0, 'the oldest (live) was dropped to make room: it starts afresh')
})

// The cluster's budget (REDIS_URL): each replica's uses reach Redis at the next sync, and the
// others' come back in the same round trip. Against the machine's Redis, under a prefix of its own.

async function replica (t: Test, url: string, prefix: string): Promise<{ budget: WindowBudget, sync: BudgetSync, counters: SharedCounters }> {
  const counters = new SharedCounters({ url, prefix, timeoutMs: 1000 })
  await counters.start()
  t.teardown(async () => { await counters.stop() })
  const sync = new BudgetSync(counters, 1000)
  const budget = sync.register('introspect-client', new WindowBudget(10, 60_000))
  return { budget, sync, counters }
}

t.test('two replicas share one allowance, within what each spends between two syncs', async (t) => {
  const { url, prefix } = testRedis()
  const a = await replica(t, url, prefix)
  const b = await replica(t, url, prefix)
  // Well inside one window, whatever the clock says.
  const now = Math.floor(Date.now() / 60_000) * 60_000 + 1_000
  for (let i = 0; i < 6; i++) t.equal(a.budget.spend('client-1', now), 0)
  await a.sync.sync(now)
  for (let i = 0; i < 3; i++) t.equal(b.budget.spend('client-1', now), 0)
  await b.sync.sync(now)
  t.equal(b.budget.spend('client-1', now), 0, 'B knows of A\'s six: one more makes ten')
  t.ok(b.budget.spend('client-1', now) > 0, 'the eleventh is refused on B')
  // A has not heard of B yet: it may spend until its next sync (the stated tolerance)…
  t.equal(a.budget.spend('client-1', now), 0)
  await a.sync.sync(now)
  await b.sync.sync(now)
  // …then it has: 6 + 4 + 1 = 11 in the cluster.
  t.ok(a.budget.spend('client-1', now) > 0, 'refused on A once it synced')
  t.equal(a.budget.spend('client-2', now), 0, 'another client is untouched')
  t.equal(a.counters.state, 'up')
})

t.test('with Redis unreachable the budget counts locally and offers its uses again later', async (t) => {
  const port = await freePort()
  const a = await replica(t, `redis://127.0.0.1:${port}`, 'tessera-test-down:')
  t.equal(a.counters.state, 'down')
  const now = Math.floor(Date.now() / 60_000) * 60_000 + 1_000
  for (let i = 0; i < 10; i++) t.equal(a.budget.spend('client-1', now), 0)
  await a.sync.sync(now)
  t.ok(a.budget.spend('client-1', now) > 0, 'the local allowance still holds')
  t.equal(a.budget.unsynced('introspect-client', now).deltas[0]?.delta, 10, 'nothing was lost: all ten are still to be added')
  t.equal(a.counters.stats.localFallbacks, 0, 'skipped syncs are not rate-limit counts (the budget always counts in-process)')
})
