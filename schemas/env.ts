import { Type, type Static } from 'typebox'
import { USERNAME_PATTERN } from './common.js'

/**
 * Every setting Tessera reads, with its default. This schema is the single place where a
 * default lives; `.env.example` and the README table document the same names.
 * Durations are in seconds; 0 switches a lifetime limit off.
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('production'), Type.Literal('development'), Type.Literal('test')], { default: 'development' }),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  PUBLIC_URL: Type.String({ default: '', pattern: '^(https?://[^\\s/?#]+(/[^\\s?#]*)?)?$' }),
  // true, false, a number of proxy hops, or the proxies' addresses / CIDR ranges, comma-separated (checked in src/config.ts).
  TRUST_PROXY: Type.String({ default: 'false' }),
  // Seconds a shutdown (SIGTERM/SIGINT) may take before the process exits anyway.
  SHUTDOWN_TIMEOUT: Type.Integer({ default: 25, minimum: 1, maximum: 3600 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)), { default: 'info' }),
  BODY_LIMIT: Type.Integer({ default: 16384, minimum: 1024, maximum: 1048576 }),

  DATABASE_URL: Type.String({ default: '', pattern: '^(postgres(ql)?://.+)?$' }),
  DATABASE_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 200 }),
  DATABASE_TIMEOUT_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 60000 }),
  // A direct connection for the invalidation listener (LISTEN), when DATABASE_URL goes through a
  // transaction-mode pooler such as PgBouncer, where LISTEN does not work. Empty: DATABASE_URL.
  DATABASE_LISTEN_URL: Type.String({ default: '', pattern: '^(postgres(ql)?://.+)?$' }),
  // Named prepared statements for the hot path's lookups; false behind a transaction-mode pooler
  // that cannot keep them (PgBouncer before 1.21, or without max_prepared_statements).
  DATABASE_PREPARED_STATEMENTS: Type.Boolean({ default: true }),
  // Apply pending migrations at start. false: a migration Job (`tessera migrate`) applies them,
  // and a replica refuses to start while any is pending.
  MIGRATE_ON_START: Type.Boolean({ default: true }),
  DATA_DIR: Type.String({ default: './data', minLength: 1 }),

  TOKEN_PREFIX: Type.String({ default: 'tsr', pattern: '^[a-z][a-z0-9]{1,15}$' }),
  TOKEN_HMAC_KEY: Type.String({ default: '' }),
  SIGNING_KEY_SECRET: Type.String({ default: '' }),
  TOKEN_DEFAULT_LIFETIME: Type.Integer({ default: 7776000, minimum: 0 }),
  TOKEN_MAX_LIFETIME: Type.Integer({ default: 31536000, minimum: 0 }),
  CLIENT_CREDENTIALS_TOKEN_LIFETIME: Type.Integer({ default: 3600, minimum: 60 }),
  SCOPES: Type.String({ default: '' }),
  // Who may hold a personal token with the introspect scope; applications always may.
  PERSONAL_INTROSPECT_TOKENS: Type.Union([Type.Literal('admins'), Type.Literal('everyone'), Type.Literal('nobody')], { default: 'admins' }),
  TOKEN_ROTATION_MAX_GRACE: Type.Integer({ default: 86400, minimum: 0, maximum: 2592000 }),
  TOKEN_RETENTION: Type.Integer({ default: 0, minimum: 0 }),
  TOKEN_SWEEP_INTERVAL: Type.Integer({ default: 3600, minimum: 10, maximum: 86400 }),
  LAST_USED_FLUSH_INTERVAL: Type.Integer({ default: 60, minimum: 1, maximum: 3600 }),

  BASIC_AUTH_ENABLED: Type.Boolean({ default: true }),
  BOOTSTRAP_ADMIN_USERNAME: Type.String({ default: 'admin', pattern: USERNAME_PATTERN }),
  BOOTSTRAP_ADMIN_PASSWORD: Type.String({ default: '' }),

  // The web page's sign-in session (/settings/tokens): absolute lifetime, and inactivity before it ends.
  SESSION_LIFETIME: Type.Integer({ default: 3600, minimum: 60, maximum: 86400 }),
  SESSION_IDLE_TIMEOUT: Type.Integer({ default: 900, minimum: 60, maximum: 86400 }),

  ARGON2_MEMORY_COST: Type.Integer({ default: 65536, minimum: 1024, maximum: 4194304 }),
  ARGON2_TIME_COST: Type.Integer({ default: 3, minimum: 1, maximum: 20 }),

  CACHE_MAX_ENTRIES: Type.Integer({ default: 100000, minimum: 0 }),
  CACHE_MAX_BYTES: Type.Integer({ default: 67108864, minimum: 0 }),
  CACHE_TTL: Type.Integer({ default: 30, minimum: 0, maximum: 3600 }),
  CACHE_NEGATIVE_TTL: Type.Integer({ default: 5, minimum: 0, maximum: 300 }),
  CACHE_DEGRADED_TTL: Type.Integer({ default: 5, minimum: 0, maximum: 300 }),
  CLIENT_CREDENTIAL_CACHE_TTL: Type.Integer({ default: 60, minimum: 0, maximum: 3600 }),

  METRICS_ENABLED: Type.Boolean({ default: true }),
  METRICS_TOKEN: Type.String({ default: '' }),

  RATE_LIMIT_WINDOW: Type.Integer({ default: 60, minimum: 1, maximum: 86400 }),
  RATE_LIMIT_PASSWORD_PER_USER: Type.Integer({ default: 10, minimum: 1 }),
  RATE_LIMIT_PASSWORD_PER_IP: Type.Integer({ default: 30, minimum: 1 }),
  RATE_LIMIT_INTROSPECT_PER_CLIENT: Type.Integer({ default: 600000, minimum: 1 }),
  // Failed client authentications per address (checked before argon2) and per client_id (past it, failures answer 429).
  RATE_LIMIT_CLIENT_FAILURES_PER_IP: Type.Integer({ default: 30, minimum: 1 }),
  RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT: Type.Integer({ default: 300, minimum: 1 }),

  // Rate-limit counts shared by every replica (empty: each process counts its own).
  REDIS_URL: Type.String({ default: '', pattern: '^(rediss?://.+)?$' }),
  REDIS_KEY_PREFIX: Type.String({ default: 'tessera:', pattern: '^[A-Za-z0-9:_.-]{0,64}$' }),
  REDIS_TIMEOUT_MS: Type.Integer({ default: 250, minimum: 10, maximum: 10000 }),
  // What /readyz answers while this replica cannot reach the database: `fleet` stays ready unless
  // other replicas reach it (they tell through Redis); `strict` turns 503 at once.
  READINESS_MODE: Type.Union([Type.Literal('fleet'), Type.Literal('strict')], { default: 'fleet' }),
  // How often the hot routes' in-process budgets are reconciled with Redis.
  RATE_LIMIT_SYNC_INTERVAL_MS: Type.Integer({ default: 200, minimum: 20, maximum: 5000 }),

  // GitHub secret scanning: where GitHub's public keys are (an http(s) URL or a file with the same
  // JSON). Empty: POST /api/v1/secret-scanning/github is not served.
  SECRET_SCANNING_GITHUB_KEYS: Type.String({ default: '', maxLength: 2048 }),

  // Days before a personal token's expiry when token.expiring is emitted (once each), comma-separated.
  TOKEN_EXPIRY_NOTICE_DAYS: Type.String({ default: '30,7,1', pattern: '^\\s*(\\d{1,4}\\s*(,\\s*\\d{1,4}\\s*)*)?$' }),

  // Mail to token owners (expiry notices, leaks): an smtp:// or smtps:// URL; empty: no mail.
  SMTP_URL: Type.String({ default: '', pattern: '^(smtps?://.+)?$' }),
  // The From address (empty: tessera@ and PUBLIC_URL's host name).
  SMTP_FROM: Type.String({ default: '', maxLength: 200 }),

  // Webhooks: one attempt's deadline, the first retry's delay (then ×4 each, at most an hour),
  // how long after the event deliveries are retried, and how often the outbox is polled.
  WEBHOOK_TIMEOUT_MS: Type.Integer({ default: 10000, minimum: 100, maximum: 60000 }),
  WEBHOOK_RETRY_BASE_MS: Type.Integer({ default: 5000, minimum: 10, maximum: 3600000 }),
  WEBHOOK_RETRY_PERIOD: Type.Integer({ default: 86400, minimum: 1, maximum: 2592000 }),
  WEBHOOK_POLL_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 10, maximum: 60000 }),
  // Days an event and its delivery log are kept once nothing is pending for it (0: forever).
  EVENT_RETENTION: Type.Integer({ default: 30, minimum: 0, maximum: 3650 })
})

export type Env = Static<typeof EnvSchema>
