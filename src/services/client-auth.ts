import { hash, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { CacheFreshness } from './cache-freshness.js'
import type { PasswordHasher } from './passwords.js'

/** An authenticated OAuth client, as the hot path needs it. */
export interface ClientRecord {
  applicationId: string
  clientId: string
  name: string
  scopes: string[]
  introspectionAudiences: string[] | null
  introspectionScopes: string[] | null
}

/** An application row as client authentication reads it (TokenStore.client). */
export interface ClientRow {
  id: string
  client_id: string
  name: string
  client_secret_hash: string | null
  scopes: string[]
  introspection_audiences: string[] | null
  introspection_scopes: string[] | null
}

export type ClientLookup = (clientId: string) => Promise<ClientRow | null>

/** Stores a secret's new hash in place of `previousHash` (and only if it is still that one: a rotation wins). */
export type ClientSecretRehash = (applicationId: string, previousHash: string, newHash: string) => Promise<void>

/**
 * Verifies client credentials. argon2id runs once per (client_id, secret) pair and the success
 * is remembered for a short time under a keyed digest of the pair (the key is random per
 * process, so the cache holds nothing an attacker could use). A failure is remembered too, for
 * less time (`failureTtlSeconds`): repeating a wrong pair costs no argon2. Concurrent first
 * requests with the same credentials share one verification. An unknown client_id runs no
 * argon2 at all, and takes as long as a known one (PasswordHasher.verify).
 */
export class ClientAuthenticator {
  readonly #lookup: ClientLookup
  readonly #hasher: PasswordHasher
  /**
   * The key of the cache's keyed digest: 256 random bits, new in every process, prefixed to what
   * is hashed. A lookup key, never sent anywhere, so one SHA-256 pass serves (a fifth of an HMAC's cost).
   */
  readonly #key = randomBytes(32).toString('base64')
  readonly #verified: LRUCache<string, { client: ClientRecord, storedAt: number }> | undefined
  readonly #ttlMs: number
  readonly #freshness: CacheFreshness
  /** Pairs that failed, by the same keyed digest: answered 401 again without argon2. */
  readonly #failed: LRUCache<string, true> | undefined
  readonly #rehash: ClientSecretRehash | undefined
  readonly #onRehashError: (error: unknown) => void
  readonly #inFlight = new Map<string, Promise<ClientRecord | null>>()
  /** Bumped by every invalidation: a verification that straddles one is not cached. */
  #generation = 0

  constructor (options: {
    lookup: ClientLookup
    hasher: PasswordHasher
    ttlSeconds: number
    maxEntries?: number
    freshness?: CacheFreshness
    /** Seconds a failed pair is remembered (default 30; 0: not at all). */
    failureTtlSeconds?: number
    /** Failed pairs remembered at most (default 10000): a flood of random secrets pushes out only its own. */
    maxFailures?: number
    /** Where a secret re-hashed with the current argon2 parameters is stored; without it none is. */
    rehash?: ClientSecretRehash
    onRehashError?: (error: unknown) => void
  }) {
    this.#lookup = options.lookup
    this.#hasher = options.hasher
    this.#ttlMs = options.ttlSeconds * 1000
    this.#freshness = options.freshness ?? new CacheFreshness(options.ttlSeconds)
    if (options.ttlSeconds > 0) {
      this.#verified = new LRUCache({ max: options.maxEntries ?? 10000, ttl: this.#ttlMs, ttlAutopurge: false })
    }
    const failureTtlSeconds = options.failureTtlSeconds ?? 30
    if (failureTtlSeconds > 0) {
      this.#failed = new LRUCache({ max: options.maxFailures ?? 10000, ttl: failureTtlSeconds * 1000, ttlAutopurge: false })
    }
    this.#rehash = options.rehash
    this.#onRehashError = options.onRehashError ?? (() => {})
  }

  /**
   * The client, or null when the credentials are wrong. `beforeVerifying` runs when the pair is
   * not one verified recently, before anything is spent on it (the caller's per-address limit of
   * failures): what it throws is thrown.
   */
  async authenticate (clientId: string, secret: string, options: { beforeVerifying?: () => Promise<void> } = {}): Promise<ClientRecord | null> {
    const key = this.#keyOf(clientId, secret)
    const cached = this.#verifiedUnder(key)
    if (cached !== undefined) return cached
    await options.beforeVerifying?.()
    if (this.#failed?.get(key) === true) return null
    const generation = this.#generation
    let pending = this.#inFlight.get(key)
    if (pending === undefined) {
      const started: Promise<ClientRecord | null> = this.#verify(clientId, secret).finally(() => {
        // Only its own entry: an invalidation may have dropped it, and a newer one taken its place.
        if (this.#inFlight.get(key) === started) this.#inFlight.delete(key)
      })
      pending = started
      this.#inFlight.set(key, pending)
    }
    const client = await pending
    const ttl = this.#freshness.lifetime(this.#ttlMs)
    if (client !== null && generation === this.#generation && ttl > 0) {
      this.#verified?.set(key, { client, storedAt: Date.now() }, { ttl })
    }
    if (client === null && generation === this.#generation) this.#failed?.set(key, true)
    return client
  }

  /**
   * The client when this pair was verified recently, else undefined (then only authenticate()
   * can tell): no I/O and no promise, for the hot path.
   */
  verified (clientId: string, secret: string): ClientRecord | undefined {
    return this.#verifiedUnder(this.#keyOf(clientId, secret))
  }

  #keyOf (clientId: string, secret: string): string {
    // The id's length first: no two (client_id, secret) pairs hash the same input.
    return hash('sha256', `${this.#key}${clientId.length}:${clientId}${secret}`, 'base64url')
  }

  #verifiedUnder (key: string): ClientRecord | undefined {
    const cached = this.#verified?.get(key)
    if (cached === undefined) return undefined
    if (!this.#freshness.degraded || this.#freshness.trusts(cached.storedAt)) return cached.client
    this.#verified?.delete(key)
    return undefined
  }

  async #verify (clientId: string, secret: string): Promise<ClientRecord | null> {
    const row = clientId.length <= 64 ? await this.#lookup(clientId) : null
    // verify() takes the same time for unknown clients and public clients without a secret, without argon2.
    if (!await this.#hasher.verify(row?.client_secret_hash, secret) || row === null) return null
    // Not awaited: the answer does not wait for the new hash. Busy or the database away: the next verification tries again.
    if (row.client_secret_hash != null) this.#upgrade(row.id, row.client_secret_hash, secret).catch(this.#onRehashError)
    return {
      applicationId: row.id,
      clientId: row.client_id,
      name: row.name,
      scopes: row.scopes,
      introspectionAudiences: row.introspection_audiences !== null && row.introspection_audiences.length > 0 ? row.introspection_audiences : null,
      introspectionScopes: row.introspection_scopes !== null && row.introspection_scopes.length > 0 ? row.introspection_scopes : null
    }
  }

  /**
   * After a successful verification, off the request's path: a hash made with other argon2
   * parameters than the configured ones is replaced, so every secret comes to cost the same to
   * verify (and unknown ids, which wait the average, stay indistinguishable after a cost change).
   */
  async #upgrade (applicationId: string, stored: string, secret: string): Promise<void> {
    if (this.#rehash === undefined) return
    const fresh = await this.#hasher.upgrade(stored, secret)
    if (fresh !== null) await this.#rehash(applicationId, stored, fresh)
  }

  /**
   * Forgets every verified credential of an application (secret rotated, application deleted),
   * and every remembered failure (rare enough that sorting them by application is not worth it).
   */
  invalidateApplication (applicationId: string): void {
    this.#generation++
    // A verification in flight read the old row: callers arriving from now on start their own.
    this.#inFlight.clear()
    this.#failed?.clear()
    if (this.#verified === undefined) return
    for (const [key, { client }] of this.#verified.entries()) {
      if (client.applicationId === applicationId) this.#verified.delete(key)
    }
  }

  /** Forgets every verified credential (the invalidation channel reconnected: changes may have been missed). */
  clear (): void {
    this.#generation++
    this.#inFlight.clear()
    this.#verified?.clear()
    this.#failed?.clear()
  }

  get size (): number {
    return this.#verified?.size ?? 0
  }
}
