import { JWT_TYPES } from './signing-keys.js'
import { isWellFormedToken, type SecretDigester } from './token-format.js'

/** Three base64url parts joined by two dots: worth a digest and a signature check. */
function looksLikeJws (token: string): boolean {
  return token.length <= MAX_JWT_LENGTH && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)
}

/** Far above any JWT this service signs (about 600 characters). */
const MAX_JWT_LENGTH = 4096

/** What the resolver needs of the cache (TokenCache): lookups, and the generation invalidations bump. */
export interface ResolverCache {
  /** `countMiss: false` when a miss will be looked up (and counted) again at once. */
  get: (key: string, countMiss?: boolean) => TokenRecord | null | undefined
  set: (key: string, record: TokenRecord) => void
  setUnknown: (key: string) => void
  readonly generation: number
}

/** Reads one token by digest from the store; `null` when no token has that digest. */
export type TokenLookup = (digest: string) => Promise<TokenRecord | null>

/** What the hot path needs to answer for a token, as read from the database (see TokenStore). */
export interface TokenRecord {
  id: string
  /** Scopes as granted. */
  scopes: string[]
  /** What it grants now (implied scopes included, less what its holder may no longer hold), space-separated. */
  effectiveScope: string
  audience: string[] | null
  userId: string | null
  username: string | null
  applicationId: string
  clientId: string
  /** Unix seconds. */
  createdAt: number
  /** Unix milliseconds, or null for a token that never expires. */
  expiresAt: number | null
  revoked: boolean
  ownerActive: boolean
  /** An application's own token: the application's introspection limits (null fields: no limit). Null for a user's token. */
  introspectionPolicy: { audiences: string[] | null, scopes: string[] | null } | null
  /*
   * What the hot routes made of this record, kept in it (and so in the cache entry) for the
   * next hit: the introspection answer's bytes, token/info's bytes with the `expires_in` they
   * were made for, the gateway's scope set and identity headers. A token that changes is read
   * again as a new record, so none of these outlives what it was made from. Set by the routes.
   */
  introspectionJson?: string
  tokenInfo?: { expiresIn: number | null, json: string, expiration: string | null }
  gatewayIdentity?: { granted: Set<string>, headers: Record<string, string> }
}

export function isActive (record: TokenRecord, now = Date.now()): boolean {
  return !record.revoked && record.ownerActive && (record.expiresAt === null || record.expiresAt > now)
}

/** Checks JWT access tokens offline (signature, known key, expiry); see SigningKeyStore. */
export interface JwtAccessTokenVerifier {
  check: (token: string, typ: string) => 'valid' | 'unknown-key' | 'invalid'
  /** Reloads the keys after a token named an unknown one; false when a reload ran moments ago. */
  reloadForUnknownKey: () => Promise<boolean>
}

export interface TokenResolverOptions {
  prefix: string
  digester: SecretDigester
  cache: ResolverCache
  lookup: TokenLookup
  /** Accept JWT access tokens signed with the service's keys (looked up by digest like opaque ones). */
  jwt?: JwtAccessTokenVerifier
}

/**
 * The introspection hot path: format and checksum check (no I/O), one cheap keyed hash, one
 * cache lookup; only a miss computes the stored digest (HMAC) and reaches the database.
 * Returns the record of an **active** token, or null for anything else (malformed, unknown,
 * expired, revoked, owner suspended or gone).
 * A database failure propagates: callers answer 503, never "active".
 */
export class TokenResolver {
  readonly #prefix: string
  readonly #digester: SecretDigester
  readonly #cache: ResolverCache
  readonly #lookup: TokenLookup
  readonly #jwt: JwtAccessTokenVerifier | undefined

  constructor (options: TokenResolverOptions) {
    this.#prefix = options.prefix
    this.#digester = options.digester
    this.#cache = options.cache
    this.#lookup = options.lookup
    this.#jwt = options.jwt
  }

  /**
   * Whether the string even looks like one of our tokens (no I/O): a well-formed opaque token,
   * or an unexpired JWT access token bearing a valid signature by one of our published keys.
   */
  isWellFormed (token: string): boolean {
    return isWellFormedToken(token, this.#prefix) || this.#jwt?.check(token, JWT_TYPES.accessToken) === 'valid'
  }

  digest (token: string): string {
    return this.#digester.digest(token)
  }

  /** Where the cache keeps what it knows of `token` (see SecretDigester.cacheKey). */
  cacheKey (token: string): string {
    return this.#digester.cacheKey(token)
  }

  /**
   * What the cache alone knows of an opaque token, with no I/O and no promise (the hot path's
   * first try): its record when active, null when known inactive, undefined when only
   * resolve() can tell (not cached, or not an opaque token). A miss here is not counted: the
   * resolve() that follows counts it.
   */
  cached (token: string): TokenRecord | null | undefined {
    if (!isWellFormedToken(token, this.#prefix)) return undefined
    const cached = this.#cache.get(this.#digester.cacheKey(token), false)
    if (cached === undefined) return undefined
    return cached !== null && isActive(cached) ? cached : null
  }

  async resolve (token: string): Promise<TokenRecord | null> {
    let record: TokenRecord | null
    if (isWellFormedToken(token, this.#prefix)) {
      const key = this.#digester.cacheKey(token)
      const cached = this.#cache.get(key)
      record = cached !== undefined ? cached : await this.#load(key, this.#digester.digest(token))
    } else {
      if (this.#jwt === undefined || !looksLikeJws(token)) return null
      const key = this.#digester.cacheKey(token)
      // A cached key is of a string we issued byte for byte (or one already found unknown):
      // the signature was checked when it was first seen, and the record carries its expiry.
      const cached = this.#cache.get(key)
      if (cached !== undefined) record = cached
      else if (!await this.#isValidJwt(token)) return null
      else record = await this.#load(key, this.#digester.digest(token))
    }
    return record !== null && isActive(record) ? record : null
  }

  /**
   * A JWT gets no further than its signature and `exp` allow; past them it is looked up by digest
   * like an opaque token, so its row decides (revocation, suspended owner, deleted application).
   */
  async #isValidJwt (token: string): Promise<boolean> {
    if (this.#jwt === undefined) return false
    let outcome = this.#jwt.check(token, JWT_TYPES.accessToken)
    if (outcome === 'unknown-key' && await this.#jwt.reloadForUnknownKey()) outcome = this.#jwt.check(token, JWT_TYPES.accessToken)
    return outcome === 'valid'
  }

  /** Reads a digest from the store (after a cache miss) and caches the answer under `key`. */
  async #load (key: string, digest: string): Promise<TokenRecord | null> {
    const generation = this.#cache.generation
    const record = await this.#lookup(digest)
    // An invalidation during the lookup (revocation, suspension) may postdate what was read.
    if (this.#cache.generation !== generation) return record
    if (record === null) this.#cache.setUnknown(key)
    else this.#cache.set(key, record)
    return record
  }
}
