import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

const ENCRYPTED = 'aes-256-gcm:'
const PLAIN = 'plain:'

/** Why a stored value cannot be opened. */
export type UnsealFailure = 'unknown-form' | 'no-secret' | 'wrong-secret'

export class UnsealError extends Error {
  constructor (readonly reason: UnsealFailure) {
    super(reason)
  }
}

/**
 * Secrets Tessera must read back (signing keys, webhook secrets), stored in the database sealed
 * with AES-256-GCM under a key derived (HKDF-SHA256, one salt per kind of secret) from
 * SIGNING_KEY_SECRET or TOKEN_HMAC_KEY; the row's id is the associated data, so a sealed value
 * cannot be moved to another row. Without a secret the value is stored as `plain:` and only the
 * database's access control protects it.
 */
export class Sealer {
  readonly #key: Buffer | null

  constructor (secret: string, salt: string, info: string) {
    this.#key = secret === '' ? null : Buffer.from(hkdfSync('sha256', secret, salt, info, 32))
  }

  seal (id: string, plaintext: string): string {
    if (this.#key === null) return PLAIN + plaintext
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv).setAAD(Buffer.from(id))
    const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return `${ENCRYPTED}${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${sealed.toString('base64url')}`
  }

  /** The plaintext; throws an UnsealError saying why it cannot. */
  unseal (id: string, stored: string): string {
    if (stored.startsWith(PLAIN)) return stored.slice(PLAIN.length)
    if (!stored.startsWith(ENCRYPTED)) throw new UnsealError('unknown-form')
    if (this.#key === null) throw new UnsealError('no-secret')
    const [iv = '', tag = '', sealed = ''] = stored.slice(ENCRYPTED.length).split('.')
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(id))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]).toString('utf8')
    } catch {
      throw new UnsealError('wrong-secret')
    }
  }
}
