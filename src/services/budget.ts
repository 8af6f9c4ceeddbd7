import { Repeating } from './repeating.js'
import type { SharedCounters, WindowDelta } from './shared-counters.js'

/**
 * A per-key allowance of requests per fixed window, counted in this process: what a hot route
 * spends instead of a rate-limit store, so that it never waits on one (a Map lookup and an
 * increment per request). Windows are fixed on the clock (a window of 60 s starts at every whole
 * minute), so every replica's window for a key is the same window.
 *
 * With a BudgetSync (REDIS_URL), what this process spent is added to the cluster's count in
 * Redis every sync interval, and the other replicas' spending, read back in the same round
 * trip, counts against the allowance here: the budget is the cluster's, within what the
 * replicas spend in one interval before they hear of each other.
 *
 * Keys are authenticated identities (an application, a token), so their number is bounded by
 * the credentials that exist; past `maxKeys` the expired windows are dropped first, then the
 * oldest.
 */
export class WindowBudget {
  readonly #windows = new Map<string, Window>()

  constructor (readonly max: number, readonly windowMs: number, readonly maxKeys = 100_000) {}

  /** Spends one request of `key`'s allowance: 0 when allowed, else the whole seconds until its window ends. */
  spend (key: string, now = Date.now()): number {
    const start = now - (now % this.windowMs)
    let window = this.#windows.get(key)
    if (window === undefined || window.start !== start) {
      if (window === undefined && this.#windows.size >= this.maxKeys) this.#makeRoom(start)
      window = { start, used: 0, pushed: 0, others: 0 }
      this.#windows.set(key, window)
    }
    if (window.used + window.others >= this.max) return Math.max(1, Math.ceil((start + this.windowMs - now) / 1000))
    window.used++
    return 0
  }

  get size (): number {
    return this.#windows.size
  }

  /**
   * The uses not yet added to the cluster's count, marked as added; `settle` takes the totals
   * back (or nothing, when Redis could not be reached: they are offered again next time).
   */
  unsynced (name: string, now = Date.now()): { deltas: WindowDelta[], settle: (totals: number[] | null) => void } {
    const current = now - (now % this.windowMs)
    const deltas: WindowDelta[] = []
    const windows: Array<{ window: Window, before: number }> = []
    for (const [key, window] of this.#windows) {
      if (window.start !== current || window.used === window.pushed) continue
      deltas.push({ key: `budget:${name}:${key}:${window.start}`, delta: window.used - window.pushed, ttl: window.start + this.windowMs - now + 1000 })
      windows.push({ window, before: window.pushed })
      window.pushed = window.used
    }
    return {
      deltas,
      settle: (totals) => {
        windows.forEach(({ window, before }, i) => {
          const total = totals?.[i]
          // Not added after all: offer them again.
          if (total === undefined) window.pushed = before
          // The cluster's count, less what this process added so far, is the others' share.
          else window.others = Math.max(window.others, total - window.pushed)
        })
      }
    }
  }

  #makeRoom (current: number): void {
    for (const [key, window] of this.#windows) if (window.start < current) this.#windows.delete(key)
    // Still full: the oldest windows go (Map order is insertion order).
    for (const key of this.#windows.keys()) {
      if (this.#windows.size < this.maxKeys) break
      this.#windows.delete(key)
    }
  }
}

interface Window {
  /** Where the window starts (ms since the epoch, a multiple of windowMs). */
  start: number
  /** Spent in this process. */
  used: number
  /** Of `used`, how much the cluster's count holds. */
  pushed: number
  /** Spent by the other replicas, as of the last sync. */
  others: number
}

/**
 * Reconciles the hot routes' budgets with Redis (REDIS_URL) every `intervalMs`, in the background:
 * one pipelined round trip for every budget's new uses. A request never waits for it.
 */
export class BudgetSync {
  readonly #budgets = new Map<string, WindowBudget>()
  readonly #counters: SharedCounters
  readonly #timer: Repeating

  constructor (counters: SharedCounters, intervalMs: number) {
    this.#counters = counters
    this.#timer = new Repeating(async () => { await this.sync() }, intervalMs)
  }

  /** Adds a budget under a name every replica gives it. */
  register (name: string, budget: WindowBudget): WindowBudget {
    if (this.#budgets.has(name)) throw new Error(`a budget named ${name} is already synced`)
    this.#budgets.set(name, budget)
    return budget
  }

  start (): void {
    this.#timer.start()
  }

  async stop (): Promise<void> {
    await this.#timer.stop()
  }

  /** One reconciliation (the timer runs it; tests call it directly). */
  async sync (now = Date.now()): Promise<void> {
    if (!this.#counters.available) return
    const batches = [...this.#budgets].map(([name, budget]) => budget.unsynced(name, now))
    const deltas = batches.flatMap((batch) => batch.deltas)
    if (deltas.length === 0) return
    const totals = await this.#counters.addAll(deltas)
    let offset = 0
    for (const batch of batches) {
      batch.settle(totals === null ? null : totals.slice(offset, offset + batch.deltas.length))
      offset += batch.deltas.length
    }
  }
}
