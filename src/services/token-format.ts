import { createHash, createHmac, createSecretKey, hash, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto'
import { crc32 } from 'node:zlib'

/**
 * Opaque token format: `<prefix>_<body><checksum>`.
 * - body: 32 base62 characters from a CSPRNG (≈190 bits of entropy);
 * - checksum: CRC32 of `<prefix>_<body>` in 6 base62 characters, so a mistyped or truncated
 *   token is refused without any database work, and secret scanners can validate a match
 *   offline (the scheme GitHub uses for its tokens).
 */
export const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const BODY_LENGTH = 32
const CHECKSUM_LENGTH = 6
const TAIL_PATTERN = /^[0-9A-Za-z]+$/

export function base62 (length: number): string {
  let out = ''
  // Rejection sampling keeps every character uniform: bytes ≥ 248 (62 × 4) are dropped.
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

function checksum (text: string): string {
  let value = crc32(text)
  let out = ''
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[value % 62] + out
    value = Math.floor(value / 62)
  }
  return out
}

export function generateToken (prefix: string): string {
  return tokenFromBody(prefix, base62(BODY_LENGTH))
}

/** `<prefix>_<body>` with its checksum appended (the body must be BODY_LENGTH base62 characters). */
export function tokenFromBody (prefix: string, body: string): string {
  const head = `${prefix}_${body}`
  return head + checksum(head)
}

/** The total length of a token with this prefix. */
export function tokenLength (prefix: string): number {
  return prefix.length + 1 + BODY_LENGTH + CHECKSUM_LENGTH
}

/**
 * Whether `token` is well formed for `prefix`: right length, alphabet and checksum.
 * Cheap and allocation-light: it runs before every lookup.
 */
export function isWellFormedToken (token: string, prefix: string): boolean {
  if (token.length !== tokenLength(prefix) || !token.startsWith(prefix) || token.charCodeAt(prefix.length) !== 95 /* _ */) return false
  const tail = token.slice(prefix.length + 1)
  if (!TAIL_PATTERN.test(tail)) return false
  const head = token.slice(0, token.length - CHECKSUM_LENGTH)
  return checksum(head) === token.slice(token.length - CHECKSUM_LENGTH)
}

export function lastEight (token: string): string {
  return token.slice(-8)
}

/**
 * Turns a secret into the value stored and looked up: SHA-256, or HMAC-SHA256 when a server
 * key is configured (then a stolen database alone cannot be used to confirm a guessed token).
 */
export class SecretDigester {
  /**
   * A KeyObject, not a Buffer: Node 24 tells a KeyObject from a Buffer by throwing and catching
   * two exceptions for a Buffer on every createHmac(), which cost the hot path a quarter of its CPU.
   */
  readonly #key: KeyObject | undefined
  /** Random per process: the in-memory cache's keys mean nothing outside this process. */
  readonly #cachePrefix = randomBytes(32).toString('base64')

  constructor (key: string) {
    this.#key = key === '' ? undefined : createSecretKey(Buffer.from(key, 'utf8'))
  }

  /**
   * The key under which the in-process cache remembers a token: one SHA-256 pass over a random
   * per-process prefix and the token, a fifth of an HMAC's cost. The stored digest (HMAC) is
   * only computed when the cache misses and the database must be asked.
   */
  cacheKey (secret: string): string {
    return hash('sha256', this.#cachePrefix + secret, 'base64url')
  }

  digest (secret: string): string {
    return this.#key === undefined
      ? hash('sha256', secret, 'hex')
      : createHmac('sha256', this.#key).update(secret).digest('hex')
  }
}

/** Constant-time string equality (for secrets of possibly different lengths). */
export function safeEqual (a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest()
  const right = createHash('sha256').update(b).digest()
  return timingSafeEqual(left, right)
}
