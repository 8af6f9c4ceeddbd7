import t from 'tap'
import { BoundedRateLimitStore, type RateLimitState } from '../../plugins/external/rate-limit-store.js'

const WINDOW = 60_000

/** A store on a clock the test moves. */
function storeAt (capacity: number): { store: BoundedRateLimitStore, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  return { store: new BoundedRateLimitStore({ capacity }, undefined, '', () => clock.now), clock }
}

function incr (store: BoundedRateLimitStore, key: string, max: number, timeWindow = WINDOW): RateLimitState {
  let state: RateLimitState | undefined
  store.incr(key, (_error, result) => { state = result }, timeWindow, max)
  return state!
}

function read (store: BoundedRateLimitStore, key: string, timeWindow = WINDOW): RateLimitState {
  let state: RateLimitState | undefined
  store.read(key, (_error, result) => { state = result }, timeWindow)
  return state!
}

t.test('counts within a window and starts again after it', async (t) => {
  const { store, clock } = storeAt(100)
  t.strictSame(incr(store, 'a', 3), { current: 1, ttl: WINDOW })
  clock.now += 1000
  t.strictSame(incr(store, 'a', 3), { current: 2, ttl: WINDOW - 1000 })
  t.strictSame(read(store, 'a'), { current: 2, ttl: WINDOW - 1000 }, 'read does not count')
  t.strictSame(read(store, 'never-seen'), { current: 0, ttl: 0 })
  clock.now += WINDOW
  t.strictSame(read(store, 'a'), { current: 0, ttl: 0 }, 'a finished window reads as empty')
  t.strictSame(incr(store, 'a', 3), { current: 1, ttl: WINDOW })
})

t.test('a counter at its limit survives a flood of junk keys far beyond the capacity (LocalStore\'s LRU forgot it after 5,000)', async (t) => {
  const { store } = storeAt(1000)
  for (let i = 0; i < 10; i++) incr(store, 'password-user:alice', 10)
  for (let i = 0; i < 9; i++) incr(store, 'password-user:bob', 10)
  for (let i = 0; i < 50_000; i++) incr(store, `password-user:junk-${i}`, 10)
  t.equal(read(store, 'password-user:alice').current, 10, 'the counter at its limit is still there')
  t.equal(read(store, 'password-user:bob').current, 9, 'and one near its limit too')
  t.equal(incr(store, 'password-user:alice', 10).current, 11, 'the next attempt is over the limit')
  t.ok(store.size <= 1000, `the table stays bounded (${store.size} counters)`)
})

t.test('finished windows are dropped before any live counter', async (t) => {
  const { store, clock } = storeAt(100)
  for (let i = 0; i < 60; i++) incr(store, `old-${i}`, 10, 1000)
  clock.now += 2000
  incr(store, 'live', 10)
  for (let i = 0; i < 50; i++) incr(store, `new-${i}`, 10)
  t.equal(read(store, 'live').current, 1, 'a live counter with a single count is kept while expired ones can go')
  t.equal(read(store, 'old-0', 1000).current, 0)
  t.ok(store.size <= 100)
})

t.test('the coldest counters go first: lowest count against its own limit', async (t) => {
  const { store } = storeAt(10)
  // 5 of 1000 is colder than 1 of 2, though a larger count.
  for (let i = 0; i < 5; i++) incr(store, 'introspect', 1000)
  incr(store, 'password', 2)
  for (let i = 0; i < 8; i++) incr(store, `junk-${i}`, 2)
  incr(store, 'one-more', 2)
  t.equal(read(store, 'password').current, 1, 'half-way to its limit: kept')
  t.equal(read(store, 'introspect').current, 0, 'far from its limit: dropped')
})

t.test('counters past their limit are kept up to twice the capacity, then the table stays bounded anyway', async (t) => {
  const { store } = storeAt(10)
  for (let i = 0; i < 30; i++) {
    incr(store, `hot-${i}`, 1)
    incr(store, `hot-${i}`, 1)
  }
  t.ok(store.size <= 20, `never more than twice the capacity (${store.size})`)
  t.equal(read(store, 'hot-29').current, 2, 'the newest hot counter is there')
})

t.test('children count apart in one shared, bounded table', async (t) => {
  const { store } = storeAt(100)
  const first = store.child({})
  const second = store.child({})
  incr(first, 'k', 5)
  incr(first, 'k', 5)
  t.equal(read(first, 'k').current, 2)
  t.equal(read(second, 'k').current, 0, 'the same key in another route is another counter')
  t.equal(store.size, 1)
  t.throws(() => store.child({ continueExceeding: true }), /continueExceeding/)
})
