import type { MikroORM } from '@mikro-orm/postgresql'
import pg from 'pg'
import type { Config } from '../config.js'
import { CacheFreshness } from './cache-freshness.js'
import { ClientAuthenticator, CLIENT_LOOKUP_SQL, type ClientRow } from './client-auth.js'
import { Counters } from './counters.js'
import { CacheInvalidation, INVALIDATION_CHANNEL, InvalidationListener } from './invalidation.js'
import { PasswordHasher } from './passwords.js'
import { SigningKeyStore } from './signing-keys.js'
import { TokenCache } from './token-cache.js'
import { SecretDigester } from './token-format.js'
import { recordFromRow, TOKEN_LOOKUP_SQL, TokenResolver, type TokenRow } from './token-resolver.js'
import type { TokenIssuerDeps } from './tokens.js'

/** The domain services of one Tessera instance, wired once at start. No HTTP in here. */
export interface Services {
  config: Config
  orm: MikroORM
  hasher: PasswordHasher
  digester: SecretDigester
  cache: TokenCache
  resolver: TokenResolver
  clients: ClientAuthenticator
  issuer: TokenIssuerDeps
  keys: SigningKeyStore
  counters: Counters
  /** Shortens cache lifetimes while the invalidation listener is down. */
  freshness: CacheFreshness
  /** Applies a change to this instance's caches and announces it to the other replicas. */
  invalidation: CacheInvalidation
  /** The LISTEN connection for other replicas' changes; absent on the embedded database (one process only). */
  listener: InvalidationListener | null
  /** Runs one statement on the pool with DATABASE_TIMEOUT_MS as its limit (hot path, readiness). */
  query: <T>(name: string | undefined, text: string, values: unknown[]) => Promise<T[]>
  /** MikroORM's current `pg` pool (it replaces the pool when it reconnects after close()). */
  pool: () => Promise<pg.Pool>
}

/** The logging the services do on their own (a pino logger fits). */
export interface ServiceLog {
  info: (details: object, message: string) => void
  warn: (details: object, message: string) => void
  error: (details: object, message: string) => void
}

const SILENT: ServiceLog = { info () {}, warn () {}, error () {} }

export function createServices (config: Config, orm: MikroORM, log: ServiceLog = SILENT): Services {
  const hasher = new PasswordHasher({ memoryCost: config.ARGON2_MEMORY_COST, timeCost: config.ARGON2_TIME_COST })
  const digester = new SecretDigester(config.TOKEN_HMAC_KEY)
  const freshness = new CacheFreshness(config.CACHE_DEGRADED_TTL)
  const cache = new TokenCache({
    maxEntries: config.CACHE_MAX_ENTRIES,
    maxBytes: config.CACHE_MAX_BYTES,
    ttl: config.CACHE_TTL,
    negativeTtl: config.CACHE_NEGATIVE_TTL,
    freshness
  })
  const keys = new SigningKeyStore({
    fork: () => orm.em.fork(),
    secret: config.SIGNING_KEY_SECRET !== '' ? config.SIGNING_KEY_SECRET : config.TOKEN_HMAC_KEY,
    // Only client_credentials tokens are JWTs today; TOKEN_MAX_LIFETIME covers any other that may become one.
    retiredKeyLifetime: Math.max(config.CLIENT_CREDENTIALS_TOKEN_LIFETIME, config.TOKEN_MAX_LIFETIME)
  })
  const pool = currentPool(orm, config.embeddedDatabase)
  const query = poolQuery(pool, config.DATABASE_TIMEOUT_MS)
  const resolver = new TokenResolver({
    prefix: config.TOKEN_PREFIX,
    digester,
    cache,
    jwt: keys,
    async lookup (digest) {
      const rows = await query<TokenRow>('tessera_token_lookup', TOKEN_LOOKUP_PG, [digest])
      return rows[0] !== undefined ? recordFromRow(rows[0]) : null
    }
  })
  const clients = new ClientAuthenticator({
    hasher,
    freshness,
    ttlSeconds: config.CLIENT_CREDENTIAL_CACHE_TTL,
    async lookup (clientId) {
      const rows = await query<ClientRow>('tessera_client_lookup', CLIENT_LOOKUP_PG, [clientId])
      return rows[0] ?? null
    }
  })
  const counters = new Counters()
  // The embedded database admits one process: there is no other replica to tell.
  const invalidation = new CacheInvalidation({
    cache,
    clients,
    ...(config.embeddedDatabase ? {} : { notify: async (payload: string) => { await query(undefined, 'select pg_notify($1, $2)', [INVALIDATION_CHANNEL, payload]) } }),
    onPublishError: (error) => { log.error({ err: error }, 'could not announce a cache invalidation to the other replicas; they drop the entry within CACHE_TTL') }
  })
  const clientUrl = orm.config.get('clientUrl')
  const listener = config.embeddedDatabase || clientUrl === undefined
    ? null
    : new InvalidationListener({
      invalidation,
      freshness,
      createClient: () => new pg.Client({ connectionString: clientUrl, connectionTimeoutMillis: config.DATABASE_TIMEOUT_MS, keepAlive: true, application_name: 'tessera-listener' }),
      pingInterval: 5000,
      timeout: config.DATABASE_TIMEOUT_MS,
      backoff: { min: 100, max: 5000 },
      onStateChange (state, error) {
        if (state === 'listening') log.info({ channel: INVALIDATION_CHANNEL }, 'listening for cache invalidations from other replicas')
        else if (state === 'reconnecting') log.warn({ err: error, degradedTtl: config.CACHE_DEGRADED_TTL }, 'cache invalidation listener lost its connection; cache lifetimes shortened until it reconnects')
      }
    })
  const issuer: TokenIssuerDeps = {
    scopes: config.scopes,
    digester,
    cache,
    prefix: config.TOKEN_PREFIX,
    limits: { defaultLifetime: config.TOKEN_DEFAULT_LIFETIME, maxLifetime: config.TOKEN_MAX_LIFETIME },
    signer: { issuer: config.publicUrl, sign: (typ, claims) => keys.sign(typ, claims) }
  }
  return { config, orm, hasher, digester, cache, resolver, clients, issuer, keys, counters, freshness, invalidation, listener, query, pool }
}

/** The hot-path statements with PostgreSQL's own placeholders, prepared once per connection. */
const TOKEN_LOOKUP_PG = TOKEN_LOOKUP_SQL.replace('?', '$1')
const CLIENT_LOOKUP_PG = CLIENT_LOOKUP_SQL.replace('?', '$1')

/**
 * Statements straight on the `pg` pool under MikroORM (no unit of work, no query builder): the
 * hot path's lookups and the readiness probe. Each carries a client-side timeout, and `pg-pool`
 * discards a connection whose statement failed, so a database that stops answering costs a
 * request at most DATABASE_TIMEOUT_MS (for a free connection, then for the answer) and never
 * leaves a stuck connection in the pool. The lookups are named, so each connection prepares
 * them once.
 */
function poolQuery (pool: () => Promise<pg.Pool>, timeout: number): Services['query'] {
  return async function query<T> (name: string | undefined, text: string, values: unknown[]): Promise<T[]> {
    const result = await (await pool()).query({ ...(name !== undefined ? { name } : {}), text, values, query_timeout: timeout } as pg.QueryConfig)
    return result.rows as T[]
  }
}

/** MikroORM's pool, followed across reconnections (it makes a new one after close()). */
function currentPool (orm: MikroORM, embedded: boolean): () => Promise<pg.Pool> {
  let pool: pg.Pool | undefined
  return async function current () {
    if (pool === undefined || pool.ending) {
      pool = await orm.em.getConnection().getNativeClient()
      if (embedded) pool.on('connect', forgetPreparedStatements)
    }
    return pool
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
