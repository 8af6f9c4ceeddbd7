import type { MikroORM } from '@mikro-orm/postgresql'
import type pg from 'pg'
import type { ClientRow } from './client-auth.js'
import { Interner } from './interner.js'
import { scopesGrantedNow, type ScopeCatalogue } from './scopes.js'
import type { TokenRecord } from './token-resolver.js'

/** A token row as the hot path reads it: the token, its owner's state and its application's client_id. */
export interface TokenRow {
  id: string
  scopes: string[]
  audience: string[] | null
  user_id: string | null
  username: string | null
  suspended_at: Date | string | null
  owner_admin: boolean | null
  application_id: string
  client_id: string
  application_scopes: string[]
  introspection_audiences: string[] | null
  introspection_scopes: string[] | null
  created_at: Date | string
  expires_at: Date | string | null
  revoked_at: Date | string | null
}

/** The single statement behind a cache miss: one unique-index probe plus two primary-key joins. */
const TOKEN_LOOKUP = {
  name: 'tessera_token_lookup',
  text: `select t.id, t.scopes, t.audience, t.user_id, u.username, u.suspended_at, u.admin as owner_admin,
  t.application_id, a.client_id, a.scopes as application_scopes, a.introspection_audiences, a.introspection_scopes,
  t.created_at, t.expires_at, t.revoked_at
  from access_tokens t
  join applications a on a.id = t.application_id
  left join users u on u.id = t.user_id
  where t.digest = $1`
}

/** The application behind a client_id, with its secret's hash (ClientAuthenticator verifies it). */
const CLIENT_LOOKUP = {
  name: 'tessera_client_lookup',
  text: `select id, client_id, name, client_secret_hash, scopes, introspection_audiences, introspection_scopes
  from applications where client_id = $1`
}

/**
 * The record of a row, with the scopes it grants now: its owner's current rights (a demoted
 * administrator's `admin` is gone) or, for an application's own token, the scopes the application
 * holds now (see scopesGrantedNow). What many tokens share (owner, application, scopes) is taken
 * from `shared` when it holds an equal value, so a full cache holds it once.
 */
export function recordFromRow (row: TokenRow, catalogue: ScopeCatalogue, shared = new Interner()): TokenRecord {
  const application = row.user_id === null
  const scopes = shared.list(row.scopes)
  return {
    id: row.id,
    scopes,
    effectiveScope: shared.string(scopesGrantedNow(catalogue, scopes, application
      ? { kind: 'application', scopes: row.application_scopes }
      : { kind: 'user', admin: row.owner_admin === true }).join(' ')),
    audience: row.audience !== null && row.audience.length > 0 ? shared.list(row.audience) : null,
    userId: shared.string(row.user_id),
    username: shared.string(row.username),
    applicationId: shared.string(row.application_id),
    clientId: shared.string(row.client_id),
    createdAt: Math.floor(new Date(row.created_at).getTime() / 1000),
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at).getTime(),
    revoked: row.revoked_at !== null,
    // A token with an owner is only as alive as its owner; the join yields null once deleted.
    ownerActive: row.user_id === null || (row.username !== null && row.suspended_at === null),
    // An application introspecting with its own token is held to its introspection limits.
    introspectionPolicy: application
      ? { audiences: shared.list(nonEmpty(row.introspection_audiences)), scopes: shared.list(nonEmpty(row.introspection_scopes)) }
      : null,
    introspectionJson: undefined,
    tokenInfo: undefined,
    gatewayIdentity: undefined
  }
}

function nonEmpty (list: string[] | null): string[] | null {
  return list !== null && list.length > 0 ? list : null
}

/**
 * The hot path's reads, straight on the `pg` pool under MikroORM (no unit of work, no query
 * builder): a token by digest, a client by client_id, and the readiness probe. Each statement
 * carries a client-side timeout (DATABASE_TIMEOUT_MS), and `pg-pool` discards a connection
 * whose statement failed, so a database that stops answering costs a request at most that long
 * (for a free connection, then for the answer) and never leaves a stuck connection in the pool.
 * The lookups are named, so each connection prepares them once.
 */
export class TokenStore {
  readonly #orm: MikroORM
  readonly #catalogue: ScopeCatalogue
  readonly #shared = new Interner()
  readonly #embedded: boolean
  readonly #timeout: number
  readonly #prepared: boolean
  #pool: pg.Pool | undefined

  /** `prepared: false` sends the lookups unnamed (a transaction-mode pooler cannot keep named statements). */
  constructor (options: { orm: MikroORM, catalogue: ScopeCatalogue, embedded: boolean, timeout: number, prepared?: boolean }) {
    this.#prepared = options.prepared ?? true
    this.#orm = options.orm
    this.#catalogue = options.catalogue
    this.#embedded = options.embedded
    this.#timeout = options.timeout
  }

  /** The record of the token stored under `digest`, whatever its state; null when there is none. */
  async token (digest: string): Promise<TokenRecord | null> {
    const [row] = await this.#query<TokenRow>(TOKEN_LOOKUP, [digest])
    return row !== undefined ? recordFromRow(row, this.#catalogue, this.#shared) : null
  }

  /** The application with this client_id, secret hash included; null when there is none. */
  async client (clientId: string): Promise<ClientRow | null> {
    const [row] = await this.#query<ClientRow>(CLIENT_LOOKUP, [clientId])
    return row ?? null
  }

  /** One round trip, for readiness. */
  async ping (): Promise<void> {
    await this.#query({ text: 'select 1' }, [])
  }

  /** Announces `payload` on a PostgreSQL channel (cache invalidations for the other replicas). */
  async notify (channel: string, payload: string): Promise<void> {
    await this.#query({ text: 'select pg_notify($1, $2)' }, [channel, payload])
  }

  /** MikroORM's `pg` pool, followed across reconnections (it makes a new one after close()). */
  async pool (): Promise<pg.Pool> {
    if (this.#pool === undefined || this.#pool.ending) {
      this.#pool = await this.#orm.em.getConnection().getNativeClient()
      if (this.#embedded) this.#pool.on('connect', forgetPreparedStatements)
    }
    return this.#pool
  }

  async #query<T> (statement: { name?: string, text: string }, values: unknown[]): Promise<T[]> {
    const named = this.#prepared ? statement : { text: statement.text }
    const result = await (await this.pool()).query({ ...named, values, query_timeout: this.#timeout } as pg.QueryConfig)
    return result.rows as T[]
  }
}

/**
 * PGlite has one session for all its connections: a statement prepared by a connection since
 * replaced still exists there, and the new connection's PREPARE of the same name would fail
 * (42P05). The embedded pool holds one connection at a time, so a new one starts by dropping
 * them; its own queries queue behind this one.
 */
function forgetPreparedStatements (client: pg.PoolClient): void {
  client.query('deallocate all').catch(() => {})
}
