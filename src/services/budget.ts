/**
 * A per-key allowance of requests per fixed window, counted in this process: what a hot route
 * spends instead of a rate-limit store, so that it never waits on one (a Map lookup and an
 * increment per request). Keys are authenticated identities (an application, a token), so their
 * number is bounded by the credentials that exist; past `maxKeys` the expired windows are
 * dropped first, then the oldest.
 */
export class WindowBudget {
  readonly #windows = new Map<string, Window>()

  constructor (readonly max: number, readonly windowMs: number, readonly maxKeys = 100_000) {}

  /** Spends one request of `key`'s allowance: 0 when allowed, else the whole seconds until its window ends. */
  spend (key: string, now = Date.now()): number {
    let window = this.#windows.get(key)
    if (window === undefined || window.endsAt <= now) {
      if (window === undefined && this.#windows.size >= this.maxKeys) this.#makeRoom(now)
      window = { endsAt: now + this.windowMs, used: 0 }
      this.#windows.set(key, window)
    }
    if (window.used >= this.max) return Math.max(1, Math.ceil((window.endsAt - now) / 1000))
    window.used++
    return 0
  }

  get size (): number {
    return this.#windows.size
  }

  #makeRoom (now: number): void {
    for (const [key, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(key)
    // Still full: the oldest windows go (Map order is insertion order).
    for (const key of this.#windows.keys()) {
      if (this.#windows.size < this.maxKeys) break
      this.#windows.delete(key)
    }
  }
}

interface Window {
  endsAt: number
  used: number
}
