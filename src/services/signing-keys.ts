import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync,
  sign, verify, type JsonWebKey, type KeyObject
} from 'node:crypto'
import type { EntityManager } from '@mikro-orm/core'
import { SigningKey } from '../entities/signing-key.js'
import { Errors } from '../errors.js'
import { takeTransactionLock } from './locks.js'
import { Sealer, type UnsealError } from './sealing.js'

/** The `typ` header of each kind of JWT the service signs (RFC 8725 §3.11: explicit typing). */
export const JWT_TYPES = {
  /** RFC 9068 §2.1 */
  accessToken: 'at+jwt',
  /** RFC 9701 §5 */
  introspection: 'token-introspection+jwt'
} as const

/** Seconds between two reloads of the key set from the database (another replica or the CLI may rotate). */
export const KEY_REFRESH_INTERVAL = 60

/** Least time between two reloads caused by a token signed with a key this instance does not know. */
const UNKNOWN_KID_RELOAD_INTERVAL_MS = 5_000

/** One entry of a JWKS (RFC 7517 §4): a public key with what it is for. */
export interface PublishedKey {
  kty: string
  crv: string
  x: string
  y: string
  kid: string
  alg: 'ES256'
  use: 'sig'
}

export interface SigningKeyInfo {
  kid: string
  createdAt: Date
  retiredAt: Date | null
}

interface LoadedKey extends SigningKeyInfo {
  publicJwk: JsonWebKey
  publicKey: KeyObject
  privateKey: KeyObject | null
}

export type JwtCheck = 'valid' | 'unknown-key' | 'invalid'

export interface SigningKeyStoreOptions {
  /** A fresh entity manager (the store runs its own transactions). */
  fork: () => EntityManager
  /**
   * The secret the private keys are sealed under: SIGNING_KEY_SECRET, else TOKEN_HMAC_KEY; empty:
   * stored as `plain:` and protected by the database alone.
   */
  secret: string
  /** Seconds a retired key stays published: the longest lifetime of a token it may have signed. */
  retiredKeyLifetime: number
}

/**
 * The service's ES256 signing keys, kept in memory after load. Signs and verifies compact JWS
 * with node:crypto (no I/O on the hot path); the database is the source of truth, shared by
 * every replica and the CLI.
 */
export class SigningKeyStore {
  readonly #fork: () => EntityManager
  readonly #sealer: Sealer
  readonly #retiredKeyLifetimeMs: number
  #keys = new Map<string, LoadedKey>()
  #active: LoadedKey | null = null
  #lastUnknownKidReload = 0

  constructor (options: SigningKeyStoreOptions) {
    this.#fork = options.fork
    this.#sealer = new Sealer(options.secret, 'tessera signing keys', 'aes-256-gcm private key sealing v1')
    // A replica may sign with a key for up to one refresh interval after another retired it.
    this.#retiredKeyLifetimeMs = (options.retiredKeyLifetime + KEY_REFRESH_INTERVAL) * 1000
  }

  /**
   * Makes sure an active key exists (creating one on the very first start) and loads the key set.
   * Idempotent; replicas starting together agree on one key thanks to the advisory lock.
   */
  async ensureSigningKey (): Promise<SigningKeyInfo> {
    await this.#fork().transactional(async (tx) => {
      await lock(tx)
      if (await tx.count(SigningKey, { retiredAt: null }) === 0) this.#createKey(tx)
    })
    await this.reload()
    return info(this.activeKey())
  }

  /** Retires the active key and creates a new one, which signs from now on. */
  async rotateSigningKey (now = new Date()): Promise<{ active: SigningKeyInfo, retired: SigningKeyInfo[] }> {
    const retired = await this.#fork().transactional(async (tx) => {
      await lock(tx)
      const current = await tx.find(SigningKey, { retiredAt: null })
      for (const key of current) key.retiredAt = now
      this.#createKey(tx, now)
      return current.map((key) => ({ kid: key.kid, createdAt: key.createdAt, retiredAt: key.retiredAt ?? now }))
    })
    await this.reload()
    return { active: info(this.activeKey()), retired }
  }

  /** Reads the published keys (and the active private key) from the database. */
  async reload (now = Date.now()): Promise<void> {
    const rows = await this.#fork().find(SigningKey, {
      $or: [{ retiredAt: null }, { retiredAt: { $gt: new Date(now - this.#retiredKeyLifetimeMs) } }]
    }, { orderBy: { createdAt: 'desc' } })
    const keys = new Map<string, LoadedKey>()
    let active: LoadedKey | null = null
    for (const row of rows) {
      const isActive = active === null && row.retiredAt == null
      const loaded: LoadedKey = {
        kid: row.kid,
        createdAt: row.createdAt,
        retiredAt: row.retiredAt ?? null,
        publicJwk: row.publicJwk,
        publicKey: createPublicKey({ key: row.publicJwk, format: 'jwk' }),
        privateKey: isActive ? createPrivateKey(this.#unseal(row.kid, row.privateKey)) : null
      }
      keys.set(row.kid, loaded)
      if (isActive) active = loaded
    }
    this.#keys = keys
    this.#active = active
  }

  /** The key that signs now. Throws SigningKeyMissing before ensureSigningKey has run. */
  activeKey (): SigningKeyInfo & { publicJwk: JsonWebKey } {
    if (this.#active === null) throw new Errors.SigningKeyMissing()
    return this.#active
  }

  /** The JWKS (RFC 7517 §5): the active key and the retired ones whose tokens may still be alive. */
  publishedKeys (now = Date.now()): { keys: PublishedKey[] } {
    const keys: PublishedKey[] = []
    for (const key of this.#keys.values()) {
      if (!this.#isPublished(key, now)) continue
      const { kty = '', crv = '', x = '', y = '' } = key.publicJwk
      keys.push({ kty, crv, x, y, kid: key.kid, alg: 'ES256', use: 'sig' })
    }
    return { keys }
  }

  /** Signs `claims` as a compact JWS with the active key; `typ` goes in the header (RFC 8725 §3.11). */
  sign (typ: string, claims: Record<string, unknown>): string {
    const key = this.#active
    if (key?.privateKey == null) throw new Errors.SigningKeyMissing()
    const input = `${base64url(JSON.stringify({ alg: 'ES256', typ, kid: key.kid }))}.${base64url(JSON.stringify(claims))}`
    const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
    return `${input}.${signature.toString('base64url')}`
  }

  /**
   * Checks a compact JWS of type `typ` without I/O: a published key, a valid ES256 signature and,
   * when it has one, an `exp` in the future. `unknown-key` says a reload might help.
   */
  check (token: string, typ: string, now = Date.now()): JwtCheck {
    const claims = this.#verify(token, typ, now)
    if (typeof claims === 'string') return claims
    if (claims.exp !== undefined && (typeof claims.exp !== 'number' || claims.exp * 1000 <= now)) return 'invalid'
    return 'valid'
  }

  /**
   * Whether `token` is a JWT of type `typ` signed by one of the keys loaded here, **expired or
   * not**: for telling an expired token of ours from garbage (the admin lookup by value), never
   * for accepting one — that is check().
   */
  identify (token: string, typ: string): JwtCheck {
    const claims = this.#verify(token, typ, null)
    return typeof claims === 'string' ? claims : 'valid'
  }

  /**
   * The claims of a compact JWS of type `typ` with a valid ES256 signature by a loaded key, one
   * still published at `publishedAt` unless that is null.
   */
  #verify (token: string, typ: string, publishedAt: number | null): Record<string, unknown> | 'unknown-key' | 'invalid' {
    const parts = parseCompact(token)
    if (parts === null) return 'invalid'
    const { header, payload, input, signature } = parts
    if (header.alg !== 'ES256' || header.typ !== typ || typeof header.kid !== 'string') return 'invalid'
    const key = this.#keys.get(header.kid)
    if (key === undefined || (publishedAt !== null && !this.#isPublished(key, publishedAt))) return 'unknown-key'
    if (signature.length !== 64 || !verify('sha256', Buffer.from(input), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) return 'invalid'
    return decodeJson(payload) ?? 'invalid'
  }

  /**
   * Reloads the key set because a token names a key this instance does not know (another replica
   * rotated); at most once per few seconds, so garbage kids cannot hammer the database.
   */
  async reloadForUnknownKey (now = Date.now()): Promise<boolean> {
    if (now - this.#lastUnknownKidReload < UNKNOWN_KID_RELOAD_INTERVAL_MS) return false
    this.#lastUnknownKidReload = now
    await this.reload(now)
    return true
  }

  #isPublished (key: LoadedKey, now: number): boolean {
    return key.retiredAt === null || key.retiredAt.getTime() + this.#retiredKeyLifetimeMs > now
  }

  #createKey (em: EntityManager, now = new Date()): SigningKey {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const publicJwk = publicKey.export({ format: 'jwk' })
    const kid = thumbprint(publicJwk)
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    return em.create(SigningKey, { kid, algorithm: 'ES256', publicJwk, privateKey: this.#seal(kid, pem), createdAt: now, retiredAt: null })
  }

  /** AES-256-GCM with the kid as associated data, so a sealed key cannot be moved to another row. */
  #seal (kid: string, pem: string): string {
    return this.#sealer.seal(kid, pem)
  }

  #unseal (kid: string, stored: string): string {
    try {
      return this.#sealer.unseal(kid, stored)
    } catch (error) {
      const reason = (error as UnsealError).reason
      if (reason === 'unknown-form') throw new Errors.SigningKeyUnreadable(`signing key ${kid} is stored in an unknown form`)
      if (reason === 'no-secret') throw new Errors.SigningKeyUnreadable(`signing key ${kid} is encrypted, but neither SIGNING_KEY_SECRET nor TOKEN_HMAC_KEY is set`)
      throw new Errors.SigningKeyUnreadable(`signing key ${kid} cannot be decrypted: SIGNING_KEY_SECRET (or TOKEN_HMAC_KEY) differs from the one it was sealed with`)
    }
  }
}

async function lock (tx: EntityManager): Promise<void> {
  await takeTransactionLock(tx, 'signingKey')
}

function info (key: SigningKeyInfo): SigningKeyInfo {
  return { kid: key.kid, createdAt: key.createdAt, retiredAt: key.retiredAt }
}

/** RFC 7638 JWK thumbprint of an EC public key. */
export function thumbprint (jwk: JsonWebKey): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
  return createHash('sha256').update(canonical).digest('base64url')
}

function base64url (text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url')
}

const BASE64URL = /^[A-Za-z0-9_-]+$/

/** The three parts of a compact JWS, or null when `token` is not one (cheap checks first). */
function parseCompact (token: string): { header: Record<string, unknown>, payload: string, input: string, signature: Buffer } | null {
  if (token.length > 8192) return null
  const first = token.indexOf('.')
  const second = token.indexOf('.', first + 1)
  if (first <= 0 || second <= first + 1 || token.indexOf('.', second + 1) !== -1 || second === token.length - 1) return null
  const [rawHeader, payload, rawSignature] = [token.slice(0, first), token.slice(first + 1, second), token.slice(second + 1)]
  if (!BASE64URL.test(rawHeader) || !BASE64URL.test(payload) || !BASE64URL.test(rawSignature)) return null
  const header = decodeJson(rawHeader)
  if (header === null) return null
  return { header, payload, input: token.slice(0, second), signature: Buffer.from(rawSignature, 'base64url') }
}

function decodeJson (part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}
