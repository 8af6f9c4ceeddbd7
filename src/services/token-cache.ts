import { LRUCache } from 'lru-cache'
import { CacheFreshness } from './cache-freshness.js'
import type { TokenRecord } from './token-resolver.js'

/** A cached answer: the record, or null for a digest known to be unknown; and when it was stored (ms). */
interface Entry {
  record: TokenRecord | null
  storedAt: number
}

export interface TokenCacheOptions {
  maxEntries: number
  maxBytes: number
  /** Seconds a known token is trusted without asking the database again. */
  ttl: number
  /** Seconds an unknown digest is remembered as unknown. */
  negativeTtl: number
  /** Shortens lifetimes while the cross-replica invalidation channel is down (default: never degraded). */
  freshness?: CacheFreshness
}

export interface CacheStats {
  hits: number
  misses: number
  evictions: number
}

/**
 * Bounded (entries and bytes) in-process cache of token records by digest. An entry never
 * outlives its token's expiry, and revocation, suspension and deletion remove entries
 * synchronously on this instance (and, through the invalidation channel, on every other one).
 */
export class TokenCache {
  readonly #lru: LRUCache<string, Entry> | undefined
  readonly #ttlMs: number
  readonly #negativeTtlMs: number
  readonly #freshness: CacheFreshness
  readonly stats: CacheStats = { hits: 0, misses: 0, evictions: 0 }
  #generation = 0

  constructor (options: TokenCacheOptions) {
    this.#ttlMs = options.ttl * 1000
    this.#negativeTtlMs = options.negativeTtl * 1000
    this.#freshness = options.freshness ?? new CacheFreshness(options.ttl)
    if (options.maxEntries === 0 || options.ttl === 0) return
    this.#lru = new LRUCache<string, Entry>({
      max: options.maxEntries,
      ...(options.maxBytes > 0 ? { maxSize: options.maxBytes, sizeCalculation: estimateSize } : {}),
      ttl: this.#ttlMs,
      // Expired entries are dropped when read; no timers on the hot path.
      ttlAutopurge: false,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.stats.evictions++
      }
    })
  }

  get enabled (): boolean {
    return this.#lru !== undefined
  }

  get size (): number {
    return this.#lru?.size ?? 0
  }

  /**
   * Changes on every invalidation. A lookup that began before an invalidation may carry the
   * state from before it (a revocation committing mid-lookup): its answer must not be cached.
   */
  get generation (): number {
    return this.#generation
  }

  /** The cached record, `null` for a digest known to be unknown, `undefined` on a miss. */
  get (digest: string, countMiss = true): TokenRecord | null | undefined {
    const entry = this.#lru?.get(digest)
    if (entry === undefined || (this.#freshness.degraded && !this.#stillTrusted(digest, entry))) {
      if (countMiss) this.stats.misses++
      return undefined
    }
    this.stats.hits++
    return entry.record
  }

  /** While degraded: drops an entry older than the short lifetime; false when it was dropped. */
  #stillTrusted (digest: string, entry: Entry): boolean {
    if (this.#freshness.trusts(entry.storedAt)) return true
    this.#lru?.delete(digest)
    return false
  }

  set (digest: string, record: TokenRecord, now = Date.now()): void {
    if (this.#lru === undefined) return
    let ttl = this.#freshness.lifetime(this.#ttlMs)
    if (record.expiresAt !== null) ttl = Math.min(ttl, record.expiresAt - now)
    if (ttl <= 0) return
    this.#lru.set(digest, { record, storedAt: now }, { ttl })
  }

  setUnknown (digest: string, now = Date.now()): void {
    const ttl = this.#freshness.lifetime(this.#negativeTtlMs)
    // lru-cache reads a ttl of 0 as "never expires": nothing is stored instead.
    if (this.#lru === undefined || ttl <= 0) return
    this.#lru.set(digest, { record: null, storedAt: now }, { ttl })
  }

  /** Forgets a digest (for example a negative entry once a token with that digest exists). */
  forget (digest: string): void {
    this.#generation++
    this.#lru?.delete(digest)
  }

  /** Drops every entry matching `predicate`; used for revocation, suspension, deletion. */
  invalidate (predicate: (record: TokenRecord) => boolean): number {
    // Even when nothing matches: the token may be on its way into the cache from a lookup in flight.
    this.#generation++
    if (this.#lru === undefined) return 0
    let removed = 0
    for (const [digest, { record }] of this.#lru.entries()) {
      if (record !== null && predicate(record)) {
        this.#lru.delete(digest)
        removed++
      }
    }
    return removed
  }

  invalidateToken (tokenId: string): number {
    return this.invalidate((record) => record.id === tokenId)
  }

  invalidateUser (userId: string): number {
    return this.invalidate((record) => record.userId === userId)
  }

  invalidateApplication (applicationId: string): number {
    return this.invalidate((record) => record.applicationId === applicationId)
  }

  clear (): void {
    this.#generation++
    this.#lru?.clear()
  }
}

function estimateSize ({ record: entry }: Entry, digest: string): number {
  if (entry === null) return 96 + digest.length * 2
  // Strings shared with other records (see Interner) are counted in full: that margin stands for
  // the answer bytes the hot routes keep in the record, which are not counted.
  let size = 440 + digest.length * 2 + entry.effectiveScope.length * 2 + entry.clientId.length * 2
  for (const scope of entry.scopes) size += 40 + scope.length * 2
  for (const aud of entry.audience ?? []) size += 40 + aud.length * 2
  for (const aud of entry.introspectionPolicy?.audiences ?? []) size += 40 + aud.length * 2
  for (const scope of entry.introspectionPolicy?.scopes ?? []) size += 40 + scope.length * 2
  return size + (entry.username?.length ?? 0) * 2
}
