import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'

function refuses (t: Test, env: Record<string, string>, message: string): void {
  t.throws(() => loadConfig(env), { name: 'ConfigError', message: `invalid configuration: ${message}` }, JSON.stringify(env))
}

t.test('with nothing set, every setting takes its default', async (t) => {
  const config = loadConfig({})
  t.match(config, {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: 3000,
    PUBLIC_URL: '',
    TRUST_PROXY: false,
    LOG_LEVEL: 'info',
    BODY_LIMIT: 16384,
    DATABASE_URL: '',
    DATABASE_POOL_MAX: 10,
    DATA_DIR: './data',
    TOKEN_PREFIX: 'tsr',
    TOKEN_HMAC_KEY: '',
    TOKEN_DEFAULT_LIFETIME: 7776000,
    TOKEN_MAX_LIFETIME: 31536000,
    SCOPES: '',
    BASIC_AUTH_ENABLED: true,
    BOOTSTRAP_ADMIN_USERNAME: 'admin',
    BOOTSTRAP_ADMIN_PASSWORD: '',
    ARGON2_MEMORY_COST: 65536,
    ARGON2_TIME_COST: 3,
    CACHE_MAX_ENTRIES: 100000,
    CACHE_MAX_BYTES: 67108864,
    CACHE_TTL: 30,
    CACHE_NEGATIVE_TTL: 5,
    publicUrl: 'http://127.0.0.1:3000',
    embeddedDatabase: true
  })
  t.strictSame(config.scopes.names, ['admin', 'introspect', 'read:tokens', 'write:tokens'])
})

t.test('values are read from the given source and converted to their types', async (t) => {
  const config = loadConfig({ PORT: '8080', TRUST_PROXY: 'true', CACHE_TTL: '0', DATABASE_URL: 'postgres://tessera@db:5432/tessera', SCOPES: 'write:repository, deploy' })
  t.equal(config.PORT, 8080)
  t.equal(config.TRUST_PROXY, true)
  t.equal(config.CACHE_TTL, 0)
  t.equal(config.embeddedDatabase, false)
  t.equal(config.DATABASE_URL, 'postgres://tessera@db:5432/tessera')
  t.strictSame(config.scopes.names, ['admin', 'deploy', 'introspect', 'read:repository', 'read:tokens', 'write:repository', 'write:tokens'])
})

t.test('loadConfig reads only the source it is given, never process.env behind its back', async (t) => {
  const saved = process.env.TOKEN_PREFIX
  t.teardown(() => {
    if (saved === undefined) delete process.env.TOKEN_PREFIX
    else process.env.TOKEN_PREFIX = saved
  })
  process.env.TOKEN_PREFIX = 'leaked'
  t.equal(loadConfig({}).TOKEN_PREFIX, 'tsr')
  t.equal(loadConfig(process.env).TOKEN_PREFIX, 'leaked')
})

t.test('with dotenv, a .env file in the working directory is read, and the environment wins over it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-config-test-'))
  writeFileSync(join(dir, '.env'), 'TOKEN_PREFIX=fromfile\nPORT=4000\n')
  const cwd = process.cwd()
  process.chdir(dir)
  t.teardown(() => {
    process.chdir(cwd)
    rmSync(dir, { recursive: true, force: true })
  })
  t.match(loadConfig({}, { dotenv: true }), { TOKEN_PREFIX: 'fromfile', PORT: 4000 })
  t.match(loadConfig({ PORT: '5000' }, { dotenv: true }), { TOKEN_PREFIX: 'fromfile', PORT: 5000 })
  t.equal(loadConfig({}).TOKEN_PREFIX, 'tsr', 'without dotenv the file is ignored')
})

t.test('a bad variable is a ConfigError whose message names the variable', async (t) => {
  t.throws(() => loadConfig({ PORT: 'abc' }), ConfigError)
  refuses(t, { PORT: 'abc' }, 'PORT must be integer')
  refuses(t, { PORT: '70000' }, 'PORT must be <= 65535')
  refuses(t, { PORT: '-1' }, 'PORT must be >= 0')
  refuses(t, { TOKEN_PREFIX: 'Bad_' }, 'TOKEN_PREFIX must match pattern "^[a-z][a-z0-9]{1,15}$"')
  refuses(t, { TOKEN_PREFIX: 'x' }, 'TOKEN_PREFIX must match pattern "^[a-z][a-z0-9]{1,15}$"')
  refuses(t, { TOKEN_HMAC_KEY: 'k'.repeat(31) }, 'TOKEN_HMAC_KEY must be at least 32 characters (or unset)')
  refuses(t, { TOKEN_DEFAULT_LIFETIME: '7200', TOKEN_MAX_LIFETIME: '3600' }, 'TOKEN_DEFAULT_LIFETIME must be between 1 and TOKEN_MAX_LIFETIME when TOKEN_MAX_LIFETIME is set')
  refuses(t, { TOKEN_DEFAULT_LIFETIME: '0', TOKEN_MAX_LIFETIME: '3600' }, 'TOKEN_DEFAULT_LIFETIME must be between 1 and TOKEN_MAX_LIFETIME when TOKEN_MAX_LIFETIME is set')
  refuses(t, { SCOPES: 'read:repository Write:Repository' }, 'SCOPES has an invalid scope name "Write:Repository" (lower-case letters, digits, "_", ".", "-", separated by ":")')
  refuses(t, { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL must match pattern "^(postgres(ql)?://.+)?$"')
  refuses(t, { DATABASE_LISTEN_URL: 'postgres://direct@db:5432/tessera' }, 'DATABASE_LISTEN_URL needs DATABASE_URL (the embedded database is one process: nothing to listen for)')
  refuses(t, { REDIS_URL: 'http://redis:6379' }, 'REDIS_URL must match pattern "^(rediss?://.+)?$"')
  refuses(t, { READINESS_MODE: 'lenient' }, 'READINESS_MODE must be one of fleet, strict')
  refuses(t, { SHUTDOWN_TIMEOUT: '0' }, 'SHUTDOWN_TIMEOUT must be >= 1')
  refuses(t, { REDIS_KEY_PREFIX: 'has space' }, 'REDIS_KEY_PREFIX must match pattern "^[A-Za-z0-9:_.-]{0,64}$"')
  refuses(t, { REDIS_TIMEOUT_MS: '5' }, 'REDIS_TIMEOUT_MS must be >= 10')
  refuses(t, { RATE_LIMIT_SYNC_INTERVAL_MS: '10' }, 'RATE_LIMIT_SYNC_INTERVAL_MS must be >= 20')
  refuses(t, { DATABASE_URL: 'postgres://tessera@db:5432/tessera', DATABASE_LISTEN_URL: 'mysql://x' }, 'DATABASE_LISTEN_URL must match pattern "^(postgres(ql)?://.+)?$"')
  refuses(t, { MIGRATE_ON_START: 'maybe' }, 'MIGRATE_ON_START must be boolean')
  refuses(t, { DATABASE_PREPARED_STATEMENTS: 'sometimes' }, 'DATABASE_PREPARED_STATEMENTS must be boolean')
  refuses(t, { PUBLIC_URL: 'auth.example.com' }, 'PUBLIC_URL must match pattern "^(https?://[^\\s/?#]+(/[^\\s?#]*)?)?$"')
  refuses(t, { TRUST_PROXY: 'maybe' }, 'TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses or CIDR ranges (got "maybe")')
  refuses(t, { BOOTSTRAP_ADMIN_USERNAME: 'first admin' }, 'BOOTSTRAP_ADMIN_USERNAME must match pattern "^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"')
  refuses(t, { BOOTSTRAP_ADMIN_PASSWORD: 'short' }, 'BOOTSTRAP_ADMIN_PASSWORD must be at least 8 characters (or unset)')
  refuses(t, { DATABASE_TIMEOUT_MS: '99' }, 'DATABASE_TIMEOUT_MS must be >= 100')
  refuses(t, { DATABASE_TIMEOUT_MS: '2s' }, 'DATABASE_TIMEOUT_MS must be integer')
  refuses(t, { CACHE_DEGRADED_TTL: '301' }, 'CACHE_DEGRADED_TTL must be <= 300')
  refuses(t, { CACHE_DEGRADED_TTL: '-1' }, 'CACHE_DEGRADED_TTL must be >= 0')
})

t.test('a bad choice names the variable and the allowed values', async (t) => {
  refuses(t, { LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent')
  refuses(t, { NODE_ENV: 'staging' }, 'NODE_ENV must be one of production, development, test')
})

t.test('several bad variables are all named', async (t) => {
  refuses(t, { PORT: 'abc', LOG_LEVEL: 'loud' }, 'PORT must be integer, LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent')
})

t.test('limits at their boundaries are accepted', async (t) => {
  t.equal(loadConfig({ TOKEN_HMAC_KEY: 'k'.repeat(32) }).TOKEN_HMAC_KEY, 'k'.repeat(32))
  t.match(loadConfig({ TOKEN_DEFAULT_LIFETIME: '3600', TOKEN_MAX_LIFETIME: '3600' }), { TOKEN_DEFAULT_LIFETIME: 3600, TOKEN_MAX_LIFETIME: 3600 })
  t.match(loadConfig({ TOKEN_DEFAULT_LIFETIME: '0', TOKEN_MAX_LIFETIME: '0' }), { TOKEN_DEFAULT_LIFETIME: 0, TOKEN_MAX_LIFETIME: 0 })
  t.match(loadConfig({ TOKEN_DEFAULT_LIFETIME: '999999999', TOKEN_MAX_LIFETIME: '0' }), { TOKEN_DEFAULT_LIFETIME: 999999999 })
  t.equal(loadConfig({ PORT: '65535' }).PORT, 65535)
  t.equal(loadConfig({ PORT: '0' }).PORT, 0)
  t.equal(loadConfig({ TOKEN_PREFIX: 'a1' }).TOKEN_PREFIX, 'a1')
  t.match(loadConfig({ BOOTSTRAP_ADMIN_USERNAME: 'ops.admin-1', BOOTSTRAP_ADMIN_PASSWORD: '8 chars!' }), { BOOTSTRAP_ADMIN_USERNAME: 'ops.admin-1', BOOTSTRAP_ADMIN_PASSWORD: '8 chars!' })
})

t.test('TRUST_PROXY takes true, false, a hop count, or the proxies\' addresses and CIDR ranges', async (t) => {
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY, false)
  t.equal(loadConfig({ TRUST_PROXY: 'TRUE' }).TRUST_PROXY, true)
  t.equal(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY, 2)
  t.strictSame(loadConfig({ TRUST_PROXY: '10.0.0.5' }).TRUST_PROXY, ['10.0.0.5'])
  t.strictSame(loadConfig({ TRUST_PROXY: '10.0.0.0/8, fd00::/8,loopback' }).TRUST_PROXY, ['10.0.0.0/8', 'fd00::/8', 'loopback'])
  refuses(t, { TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses or CIDR ranges (got "10.0.0.0/33")')
  refuses(t, { TRUST_PROXY: '10.0.0.1,' }, 'TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses or CIDR ranges (got "10.0.0.1,")')
  refuses(t, { TRUST_PROXY: 'proxy.internal' }, 'TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses or CIDR ranges (got "proxy.internal")')
})

t.test('the failed client authentication limits default to 30 per address and 300 per client', async (t) => {
  t.match(loadConfig({}), { RATE_LIMIT_CLIENT_FAILURES_PER_IP: 30, RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT: 300 })
  refuses(t, { RATE_LIMIT_CLIENT_FAILURES_PER_IP: '0' }, 'RATE_LIMIT_CLIENT_FAILURES_PER_IP must be >= 1')
})

t.test('PUBLIC_URL is used without its trailing slashes', async (t) => {
  t.equal(loadConfig({ PUBLIC_URL: 'https://auth.example.com/' }).publicUrl, 'https://auth.example.com')
  t.equal(loadConfig({ PUBLIC_URL: 'https://example.com/tessera//' }).publicUrl, 'https://example.com/tessera')
  t.equal(loadConfig({ PUBLIC_URL: 'http://auth.example.com:8443' }).publicUrl, 'http://auth.example.com:8443')
  t.equal(loadConfig({ PUBLIC_URL: 'https://auth.example.com/', HOST: '0.0.0.0', PORT: '9000' }).publicUrl, 'https://auth.example.com', 'PUBLIC_URL wins over HOST and PORT')
})

t.test('without PUBLIC_URL, the public URL is derived from HOST and PORT', async (t) => {
  t.equal(loadConfig({ HOST: '127.0.0.1', PORT: '8080' }).publicUrl, 'http://127.0.0.1:8080')
  t.equal(loadConfig({ HOST: 'auth.internal' }).publicUrl, 'http://auth.internal:3000')
  t.equal(loadConfig({ HOST: '0.0.0.0', PORT: '8080' }).publicUrl, 'http://localhost:8080', 'a wildcard address is reached as localhost')
  t.equal(loadConfig({ HOST: '::' }).publicUrl, 'http://localhost:3000')
  t.equal(loadConfig({ HOST: '::1', PORT: '8080' }).publicUrl, 'http://[::1]:8080', 'an IPv6 address is bracketed')
})
