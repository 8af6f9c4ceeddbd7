import type { MikroORM } from '@mikro-orm/postgresql'
import pg from 'pg'
import type { Config } from '../config.js'
import { KEEPALIVE_DELAY_MS } from '../db/deadlines.js'
import { Application } from '../entities/application.js'
import { BudgetSync } from './budget.js'
import { CacheFreshness } from './cache-freshness.js'
import { ClientAuthenticator } from './client-auth.js'
import { Counters } from './counters.js'
import { ExpiryNotices, parseNoticeDays } from './expiry-notices.js'
import { Mailer } from './mail.js'
import { FleetView } from './fleet.js'
import { CacheInvalidation, INVALIDATION_CHANNEL, InvalidationListener } from './invalidation.js'
import { PasswordHasher } from './passwords.js'
import { SharedCounters } from './shared-counters.js'
import { Sealer } from './sealing.js'
import { SigningKeyStore } from './signing-keys.js'
import { TokenCache } from './token-cache.js'
import { SecretDigester } from './token-format.js'
import { TokenResolver } from './token-resolver.js'
import { TokenStore } from './token-store.js'
import type { TokenIssuerDeps } from './tokens.js'
import { WebhookDispatcher } from './webhooks.js'

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
  /** The hot path's reads (token by digest, client by id) and the readiness probe, on the pool. */
  store: TokenStore
  /** Rate-limit counts shared by the replicas in Redis (REDIS_URL); null: each process counts its own. */
  sharedCounters: SharedCounters | null
  /** Reconciles the hot routes' in-process budgets with Redis; null without REDIS_URL. */
  budgets: BudgetSync | null
  /** Whether other replicas reach the database (readiness in a fleet); null without REDIS_URL. */
  fleet: FleetView | null
  /** Seals the webhook endpoints' signing secrets in the database. */
  webhookSecrets: Sealer
  /** Delivers the outbox to the webhook endpoints (started by the server, not by the CLI). */
  webhooks: WebhookDispatcher
  /** token.expiring / token.expired, once each (started by the server). */
  expiryNotices: ExpiryNotices
  /** Mail to token owners; null without SMTP_URL. */
  mailer: Mailer | null
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
  const sealingSecret = config.SIGNING_KEY_SECRET !== '' ? config.SIGNING_KEY_SECRET : config.TOKEN_HMAC_KEY
  const keys = new SigningKeyStore({
    fork: () => orm.em.fork(),
    secret: sealingSecret,
    // Only client_credentials tokens are JWTs today; TOKEN_MAX_LIFETIME covers any other that may become one.
    retiredKeyLifetime: Math.max(config.CLIENT_CREDENTIALS_TOKEN_LIFETIME, config.TOKEN_MAX_LIFETIME)
  })
  const store = new TokenStore({ orm, catalogue: config.scopes, embedded: config.embeddedDatabase, timeout: config.DATABASE_TIMEOUT_MS, prepared: config.DATABASE_PREPARED_STATEMENTS })
  const resolver = new TokenResolver({
    prefix: config.TOKEN_PREFIX,
    digester,
    cache,
    jwt: keys,
    lookup: async (digest) => await store.token(digest)
  })
  const clients = new ClientAuthenticator({
    hasher,
    freshness,
    ttlSeconds: config.CLIENT_CREDENTIAL_CACHE_TTL,
    lookup: async (clientId) => await store.client(clientId),
    // One UPDATE, and only over the hash that was verified: a rotation meanwhile wins.
    rehash: async (id, previousHash, newHash) => {
      await orm.em.fork().nativeUpdate(Application, { id, clientSecretHash: previousHash }, { clientSecretHash: newHash })
    },
    onRehashError: (error) => { log.warn({ err: error }, 'could not re-hash a client secret with the current argon2 parameters; the next verification tries again') }
  })
  const counters = new Counters()
  // The embedded database admits one process: there is no other replica to tell.
  const invalidation = new CacheInvalidation({
    cache,
    clients,
    ...(config.embeddedDatabase ? {} : { notify: async (payload: string) => { await store.notify(INVALIDATION_CHANNEL, payload) } }),
    onPublishError: (error) => { log.error({ err: error }, 'could not announce a cache invalidation to the other replicas; they drop the entry within CACHE_TTL') }
  })
  // LISTEN needs a session of its own: behind a transaction-mode pooler, a direct connection.
  const clientUrl = config.DATABASE_LISTEN_URL !== '' ? config.DATABASE_LISTEN_URL : orm.config.get('clientUrl')
  const listener = config.embeddedDatabase || clientUrl === undefined
    ? null
    : new InvalidationListener({
      invalidation,
      freshness,
      // Connects within DATABASE_TIMEOUT_MS, with keepalive like the pool's connections; the probes below catch a silent peer sooner.
      createClient: () => new pg.Client({ connectionString: clientUrl, connectionTimeoutMillis: config.DATABASE_TIMEOUT_MS, keepAlive: true, keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS, application_name: 'tessera-listener' }),
      // A probe a second: a connection that died without a word (a blackholed network) is noticed
      // within 1 s + DATABASE_TIMEOUT_MS; TCP keepalive backs it up.
      pingInterval: 1000,
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
  const sharedCounters = config.REDIS_URL === ''
    ? null
    : new SharedCounters({
      url: config.REDIS_URL,
      prefix: config.REDIS_KEY_PREFIX,
      timeoutMs: config.REDIS_TIMEOUT_MS,
      onStateChange (state, error) {
        if (state === 'up') log.info({}, 'rate limits are shared with the other replicas through Redis')
        else if (state === 'down') log.warn({ err: error }, 'Redis is unreachable: rate limits count in this process until it is back')
      },
      onCommandError (error) { log.warn({ err: error }, 'a Redis command failed: this request was counted in this process') }
    })
  const budgets = sharedCounters === null ? null : new BudgetSync(sharedCounters, config.RATE_LIMIT_SYNC_INTERVAL_MS)
  const fleet = sharedCounters === null ? null : new FleetView({ counters: sharedCounters, instanceId: invalidation.instanceId, ping: async () => { await store.ping() } })
  const webhookSecrets = new Sealer(sealingSecret, 'tessera webhook secrets', 'aes-256-gcm webhook secret sealing v1')
  const webhooks = new WebhookDispatcher({
    fork: () => orm.em.fork(),
    sealer: webhookSecrets,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
    retryPeriodMs: config.WEBHOOK_RETRY_PERIOD * 1000,
    intervalMs: config.WEBHOOK_POLL_INTERVAL_MS,
    retentionDays: config.EVENT_RETENTION,
    log
  })
  const mailer = config.SMTP_URL === ''
    ? null
    : new Mailer({ url: config.SMTP_URL, from: config.SMTP_FROM !== '' ? config.SMTP_FROM : `tessera@${new URL(config.publicUrl).hostname}`, tokensPage: `${config.publicUrl}/settings/tokens` })
  const expiryNotices = new ExpiryNotices({
    fork: () => orm.em.fork(),
    days: parseNoticeDays(config.TOKEN_EXPIRY_NOTICE_DAYS),
    ...(mailer === null ? {} : { notify: async (notices) => { await mailer.expiryNotices(notices) } }),
    log
  })
  return { config, orm, hasher, digester, cache, resolver, clients, issuer, keys, counters, freshness, invalidation, listener, store, sharedCounters, budgets, fleet, webhookSecrets, webhooks, expiryNotices, mailer }
}
