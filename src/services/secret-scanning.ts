import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'

/**
 * GitHub's secret-scanning partner program: GitHub finds a token in a public repository (or npm
 * package) and POSTs it to the issuer, signed with ECDSA P-256 over the raw body; the key is named
 * by the `Github-Public-Key-Identifier` header and published at
 * https://api.github.com/meta/public_keys/secret_scanning as
 * `{ public_keys: [{ key_identifier, key (PEM), is_current }] }`.
 */

/** One finding in a report: the matched string, the pattern's name, where it was found. */
export interface LeakReport {
  token: string
  type: string
  url: string
  source: string
}

/** The published keys, by identifier. */
type KeySet = Map<string, KeyObject>

/** Fetches or reads the key document; throws with a message that names the source. */
export type KeyDocumentLoader = () => Promise<unknown>

/** The least time between two loads of the key document (an unknown key id triggers a load). */
const REFRESH_FLOOR_MS = 60_000
const FETCH_TIMEOUT_MS = 5_000

/** A loader for `source`: an http(s) URL (GitHub's own, or a mirror) or a file holding the same JSON. */
export function keyDocumentLoader (source: string): KeyDocumentLoader {
  if (/^https?:\/\//.test(source)) {
    return async () => {
      const response = await fetch(source, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
      if (!response.ok) throw new Error(`${source} answered ${response.status}`)
      return await response.json()
    }
  }
  return async () => JSON.parse(await readFile(source, 'utf8')) as unknown
}

function parseKeys (document: unknown): KeySet {
  const list = (document as { public_keys?: unknown } | null)?.public_keys
  if (!Array.isArray(list)) throw new Error('the key document has no public_keys list')
  const keys: KeySet = new Map()
  for (const entry of list as Array<{ key_identifier?: unknown, key?: unknown }>) {
    if (typeof entry?.key_identifier !== 'string' || typeof entry.key !== 'string') continue
    const key = createPublicKey(entry.key)
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') continue
    keys.set(entry.key_identifier, key)
  }
  if (keys.size === 0) throw new Error('the key document has no P-256 public key')
  return keys
}

export type SignatureCheck = 'valid' | 'invalid' | 'keys-unavailable'

/**
 * Verifies GitHub's signatures against the published keys, kept in memory and loaded again when a
 * report names a key it does not know (GitHub rotated its key) — at most once a minute, so that
 * made-up key ids cannot turn the endpoint into a request generator against the key source.
 */
export class GithubSignatureVerifier {
  readonly #load: KeyDocumentLoader
  readonly #now: () => number
  #keys: KeySet = new Map()
  #loadedAt = Number.NEGATIVE_INFINITY
  #loading: Promise<void> | null = null

  constructor (load: KeyDocumentLoader, now: () => number = Date.now) {
    this.#load = load
    this.#now = now
  }

  async #refresh (): Promise<void> {
    if (this.#now() - this.#loadedAt < REFRESH_FLOOR_MS) return
    this.#loading ??= (async () => {
      try {
        this.#keys = parseKeys(await this.#load())
      } finally {
        // A failed load counts too: a key source that is down is not hammered either.
        this.#loadedAt = this.#now()
        this.#loading = null
      }
    })()
    await this.#loading
  }

  /** Whether `signature` (base64 DER ECDSA over SHA-256 of `body`) is valid for key `keyId`. */
  async check (keyId: string, signature: string, body: Buffer): Promise<SignatureCheck> {
    let key = this.#keys.get(keyId)
    if (key === undefined) {
      try {
        await this.#refresh()
      } catch {
        // Kept: the keys loaded before, if any.
      }
      if (this.#keys.size === 0) return 'keys-unavailable'
      key = this.#keys.get(keyId)
      if (key === undefined) return 'invalid'
    }
    const der = Buffer.from(signature, 'base64')
    if (der.length === 0) return 'invalid'
    try {
      return verify('sha256', body, { key, dsaEncoding: 'der' }, der) ? 'valid' : 'invalid'
    } catch {
      return 'invalid'
    }
  }
}
