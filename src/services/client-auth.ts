import { createHmac, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
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

export interface ClientRow {
  id: string
  client_id: string
  name: string
  client_secret_hash: string | null
  scopes: string[]
  introspection_audiences: string[] | null
  introspection_scopes: string[] | null
}

export const CLIENT_LOOKUP_SQL = `select id, client_id, name, client_secret_hash, scopes, introspection_audiences, introspection_scopes
  from applications where client_id = ?`

export type ClientLookup = (clientId: string) => Promise<ClientRow | null>

/**
 * Verifies client credentials. argon2id runs once per (client_id, secret) pair and the success
 * is remembered for a short time under a keyed digest of the pair (the key is random per
 * process, so the cache holds nothing an attacker could use). Concurrent first requests with
 * the same credentials share one verification.
 */
export class ClientAuthenticator {
  readonly #lookup: ClientLookup
  readonly #hasher: PasswordHasher
  readonly #key = randomBytes(32)
  readonly #verified: LRUCache<string, ClientRecord> | undefined
  readonly #inFlight = new Map<string, Promise<ClientRecord | null>>()

  constructor (options: { lookup: ClientLookup, hasher: PasswordHasher, ttlSeconds: number, maxEntries?: number }) {
    this.#lookup = options.lookup
    this.#hasher = options.hasher
    if (options.ttlSeconds > 0) {
      this.#verified = new LRUCache({ max: options.maxEntries ?? 10000, ttl: options.ttlSeconds * 1000, ttlAutopurge: false })
    }
  }

  async authenticate (clientId: string, secret: string): Promise<ClientRecord | null> {
    const key = createHmac('sha256', this.#key).update(clientId).update('\0').update(secret).digest('base64url')
    const cached = this.#verified?.get(key)
    if (cached !== undefined) return cached
    let pending = this.#inFlight.get(key)
    if (pending === undefined) {
      pending = this.#verify(clientId, secret).finally(() => this.#inFlight.delete(key))
      this.#inFlight.set(key, pending)
    }
    const client = await pending
    if (client !== null) this.#verified?.set(key, client)
    return client
  }

  async #verify (clientId: string, secret: string): Promise<ClientRecord | null> {
    const row = clientId.length <= 64 ? await this.#lookup(clientId) : null
    // verify() burns the same time for unknown clients and public clients without a secret.
    if (!await this.#hasher.verify(row?.client_secret_hash, secret) || row === null) return null
    return {
      applicationId: row.id,
      clientId: row.client_id,
      name: row.name,
      scopes: row.scopes,
      introspectionAudiences: row.introspection_audiences !== null && row.introspection_audiences.length > 0 ? row.introspection_audiences : null,
      introspectionScopes: row.introspection_scopes !== null && row.introspection_scopes.length > 0 ? row.introspection_scopes : null
    }
  }

  /** Forgets every verified credential of an application (secret rotated, application deleted). */
  invalidateApplication (applicationId: string): void {
    if (this.#verified === undefined) return
    for (const [key, client] of this.#verified.entries()) {
      if (client.applicationId === applicationId) this.#verified.delete(key)
    }
  }
}
