import type { SharedCounters } from '../../src/services/shared-counters.js'

/**
 * The in-memory store behind every rate limit (same interface as @fastify/rate-limit's
 * LocalStore: `incr`, `read`, `child`).
 *
 * LocalStore is an LRU of 5,000 keys per route: whoever sends requests under 5,000 fresh keys
 * (IPv6 addresses, spoofed X-Forwarded-For entries, junk usernames) pushes every other counter
 * out, and a counter that had reached its limit starts again from zero — the per-user password
 * limit could be reset that way every few seconds. This store is bounded too, but it never
 * evicts by recency: at capacity it first drops the counters whose window is over, then the
 * counters furthest from their limit (lowest count / max), a tenth of the table at a time. A
 * counter at or past its limit is kept until the table holds twice its capacity of them; an
 * attacker who wants one forgotten has to push that many other counters to their limits within
 * one window, which the per-address limits make impractical.
 *
 * Every child (one per route, one per `createRateLimit`) shares one table, so the bound holds for
 * the whole process; their keys are kept apart by a per-child prefix.
 */

/** What `incr` and `read` answer (the shape @fastify/rate-limit reads). */
export interface RateLimitState {
  current: number
  ttl: number
}

type Callback = (error: Error | null, result: RateLimitState) => void

interface Counter {
  current: number
  windowStart: number
  timeWindow: number
  max: number
}

/** Keys a table holds before it evicts. */
export const DEFAULT_CAPACITY = 100_000

class CounterTable {
  readonly counters = new Map<string, Counter>()
  children = 0
  /** The size at which the next eviction runs: after one that could free little, not before the table has grown a tenth. */
  #evictAt: number

  constructor (readonly capacity: number, readonly now: () => number) {
    this.#evictAt = capacity
  }

  /** Makes room for one more counter; see the module comment for the order. */
  makeRoom (): void {
    if (this.counters.size < this.#evictAt) return
    const now = this.now()
    for (const [key, counter] of this.counters) {
      if (counter.windowStart + counter.timeWindow <= now) this.counters.delete(key)
    }
    const target = Math.floor(this.capacity * 0.9)
    if (this.counters.size > target) this.#dropColdest(this.counters.size - target)
    this.#evictAt = Math.max(this.capacity, this.counters.size + Math.ceil(this.capacity / 10))
  }

  /** Drops up to `count` counters, lowest pressure first; those at their limit only past twice the capacity. */
  #dropColdest (count: number): void {
    const pressures = new Float64Array(this.counters.size)
    let i = 0
    for (const counter of this.counters.values()) pressures[i++] = pressure(counter)
    pressures.sort()
    const threshold = pressures[count - 1] ?? 0
    const spareTheHot = this.counters.size < this.capacity * 2
    let left = count
    // Everything below the threshold first, then as many at it as are still needed.
    for (const pass of ['below', 'at'] as const) {
      for (const [key, counter] of this.counters) {
        if (left === 0) return
        const p = pressure(counter)
        if (pass === 'below' ? p >= threshold : p !== threshold) continue
        if (spareTheHot && p >= 1) continue
        this.counters.delete(key)
        left--
      }
    }
  }
}

/** How close a counter is to its limit: 1 at the limit. */
function pressure (counter: Counter): number {
  return counter.max > 0 ? counter.current / counter.max : Number.POSITIVE_INFINITY
}

export class BoundedRateLimitStore {
  readonly #table: CounterTable
  readonly #prefix: string

  /**
   * @fastify/rate-limit constructs its store with its options (`new Store(options)`); a
   * `capacity` among them sets the table's size (tests use a small one). `now` is for tests.
   */
  constructor (options: { capacity?: number } = {}, table?: CounterTable, prefix = '', now: () => number = Date.now) {
    this.#table = table ?? new CounterTable(options.capacity ?? DEFAULT_CAPACITY, now)
    this.#prefix = prefix
  }

  incr (key: string, callback: Callback, timeWindow: number, max: number): void {
    const table = this.#table
    const now = table.now()
    const stored = `${this.#prefix}${key}`
    let counter = table.counters.get(stored)
    if (counter === undefined) {
      table.makeRoom()
      counter = { current: 0, windowStart: now, timeWindow, max }
      table.counters.set(stored, counter)
    } else if (counter.windowStart + counter.timeWindow <= now) {
      counter.current = 0
      counter.windowStart = now
    }
    counter.current++
    counter.timeWindow = timeWindow
    counter.max = max
    callback(null, { current: counter.current, ttl: counter.windowStart + timeWindow - now })
  }

  /** The state without counting (`createRateLimit(...)(request, { increment: false })`). */
  read (key: string, callback: Callback, timeWindow: number): void {
    const now = this.#table.now()
    const counter = this.#table.counters.get(`${this.#prefix}${key}`)
    if (counter === undefined || counter.windowStart + timeWindow <= now) {
      callback(null, { current: 0, ttl: 0 })
      return
    }
    callback(null, { current: counter.current, ttl: counter.windowStart + timeWindow - now })
  }

  /** A route's (or a createRateLimit's) own keys, in the same table. */
  child (routeOptions: object): BoundedRateLimitStore {
    const { continueExceeding, exponentialBackoff } = routeOptions as { continueExceeding?: boolean, exponentialBackoff?: boolean }
    // Neither is implemented: refuse them rather than silently limit differently than configured.
    if (continueExceeding === true || exponentialBackoff === true) {
      throw new Error('BoundedRateLimitStore supports neither continueExceeding nor exponentialBackoff')
    }
    return new BoundedRateLimitStore({}, this.#table, `${++this.#table.children}\u0000`)
  }

  /** Counters held, all children together. */
  get size (): number {
    return this.#table.counters.size
  }
}

/**
 * Every rate limit's store: the counts are shared by the replicas in Redis when REDIS_URL is set
 * (SharedCounters) and kept in this process otherwise, or while Redis cannot answer — per-process
 * limits for that time, shared again by themselves once it is back.
 *
 * One key space for every limit, in Redis and here: each limit's keys carry its own prefix
 * (`password-user:`, `client-failures-ip:`…), so limits that must be one budget — a user's password
 * attempts by Basic auth and by the web sign-in — are one by sharing a key.
 */
export class SharedRateLimitStore {
  readonly #local: BoundedRateLimitStore
  readonly #shared: SharedCounters | undefined

  constructor (options: { capacity?: number, sharedCounters?: SharedCounters } = {}) {
    this.#local = new BoundedRateLimitStore({ capacity: options.capacity })
    this.#shared = options.sharedCounters
  }

  /** The store class to give @fastify/rate-limit (it constructs its store itself), counting through `shared`. */
  static over (shared: SharedCounters | undefined): new () => SharedRateLimitStore {
    return class extends SharedRateLimitStore {
      constructor () {
        super({ sharedCounters: shared })
      }
    }
  }

  incr (key: string, callback: Callback, timeWindow: number, max: number): void {
    const shared = this.#shared
    if (shared === undefined) {
      this.#local.incr(key, callback, timeWindow, max)
      return
    }
    if (!shared.available) {
      shared.countedLocally()
      this.#local.incr(key, callback, timeWindow, max)
      return
    }
    // SharedCounters never rejects: null means Redis could not answer, and this process counts.
    shared.increment(`limit:${key}`, timeWindow).then((count) => {
      if (count !== null) {
        callback(null, count)
        return
      }
      shared.countedLocally()
      this.#local.incr(key, callback, timeWindow, max)
    })
  }

  read (key: string, callback: Callback, timeWindow: number): void {
    const shared = this.#shared
    if (shared === undefined || !shared.available) {
      this.#local.read(key, callback, timeWindow)
      return
    }
    shared.read(`limit:${key}`).then((count) => {
      if (count === null) this.#local.read(key, callback, timeWindow)
      else callback(null, count)
    })
  }

  /** Every route and createRateLimit counts in the one key space (see above). */
  child (routeOptions: object): SharedRateLimitStore {
    const { continueExceeding, exponentialBackoff } = routeOptions as { continueExceeding?: boolean, exponentialBackoff?: boolean }
    if (continueExceeding === true || exponentialBackoff === true) {
      throw new Error('SharedRateLimitStore supports neither continueExceeding nor exponentialBackoff')
    }
    return this
  }

  /** Counters held in this process. */
  get size (): number {
    return this.#local.size
  }
}
