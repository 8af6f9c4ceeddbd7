/**
 * How long cached answers may be trusted. Normally an entry lives its full lifetime, because
 * every change reaches every replica's cache through the invalidation channel. While that channel
 * is down (the listener lost its connection), a change made on another replica cannot reach this
 * one, so every entry — old or new — is trusted for at most `degradedTtl` seconds past the moment
 * the channel went down or the entry was stored, whichever is later. `degradedTtl` 0: nothing
 * cached is trusted, and nothing is cached, while the channel is down.
 */
export class CacheFreshness {
  readonly degradedTtlMs: number
  #degradedSince: number | null = null

  constructor (degradedTtlSeconds: number) {
    this.degradedTtlMs = degradedTtlSeconds * 1000
  }

  get degraded (): boolean {
    return this.#degradedSince !== null
  }

  /** The invalidation channel is down (or not up yet): entries get the short lifetime. */
  degrade (now = Date.now()): void {
    this.#degradedSince ??= now
  }

  /** The invalidation channel is up again (the caller clears its caches: messages may have been missed). */
  restore (): void {
    this.#degradedSince = null
  }

  /** Whether an entry stored at `storedAt` (ms) may still be used. */
  trusts (storedAt: number, now = Date.now()): boolean {
    const since = this.#degradedSince
    return since === null || now - Math.max(storedAt, since) < this.degradedTtlMs
  }

  /** The lifetime (ms) to give an entry stored now, at most `ttlMs`; 0 means "do not store it". */
  lifetime (ttlMs: number): number {
    return this.#degradedSince === null ? ttlMs : Math.min(ttlMs, this.degradedTtlMs)
  }
}
