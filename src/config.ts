import { isIP } from 'node:net'
import envSchema from 'env-schema'
import { MIN_PASSWORD_LENGTH } from '../schemas/common.js'
import { EnvSchema, type Env } from '../schemas/env.js'
import { ScopeCatalogue } from './services/scopes.js'

/** Thrown when a setting is invalid; the message always names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Fastify's trustProxy: trust every proxy, none, this many hops, or these addresses and ranges. */
export type TrustProxy = boolean | number | string[]

export interface Config extends Omit<Env, 'TRUST_PROXY'> {
  TRUST_PROXY: TrustProxy
  /** The public base URL (no trailing slash): the issuer and the base of every absolute link. */
  publicUrl: string
  scopes: ScopeCatalogue
  /** Whether DATABASE_URL is unset and the embedded PostgreSQL serves the data. */
  embeddedDatabase: boolean
}

/**
 * Reads and validates the configuration once. `source` is the environment to read
 * (process.env in the server and the CLI, an explicit object in tests); with `dotenv`
 * an optional `.env` file in the working directory is read first.
 */
export function loadConfig (source: Record<string, string | undefined>, options: { dotenv?: boolean } = {}): Config {
  let env: Env
  try {
    // `env: false`: read `source` only; env-schema would otherwise merge in process.env behind the caller's back.
    env = envSchema<Env>({ schema: EnvSchema, data: source, env: false, dotenv: options.dotenv ?? false })
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${describeSchemaErrors(error as SchemaError)}`)
  }

  if (env.TOKEN_HMAC_KEY !== '' && env.TOKEN_HMAC_KEY.length < 32) {
    throw new ConfigError('invalid configuration: TOKEN_HMAC_KEY must be at least 32 characters (or unset)')
  }
  if (env.SIGNING_KEY_SECRET !== '' && env.SIGNING_KEY_SECRET.length < 32) {
    throw new ConfigError('invalid configuration: SIGNING_KEY_SECRET must be at least 32 characters (or unset)')
  }
  if (env.METRICS_TOKEN !== '' && env.METRICS_TOKEN.length < 16) {
    throw new ConfigError('invalid configuration: METRICS_TOKEN must be at least 16 characters (or unset)')
  } if (env.DATABASE_LISTEN_URL !== '' && env.DATABASE_URL === '') {
    throw new ConfigError('invalid configuration: DATABASE_LISTEN_URL needs DATABASE_URL (the embedded database is one process: nothing to listen for)')
  }

  if (env.BOOTSTRAP_ADMIN_PASSWORD !== '' && env.BOOTSTRAP_ADMIN_PASSWORD.length < MIN_PASSWORD_LENGTH) {
    throw new ConfigError(`invalid configuration: BOOTSTRAP_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters (or unset)`)
  }
  if (env.TOKEN_MAX_LIFETIME > 0 && (env.TOKEN_DEFAULT_LIFETIME === 0 || env.TOKEN_DEFAULT_LIFETIME > env.TOKEN_MAX_LIFETIME)) {
    throw new ConfigError('invalid configuration: TOKEN_DEFAULT_LIFETIME must be between 1 and TOKEN_MAX_LIFETIME when TOKEN_MAX_LIFETIME is set')
  }

  const trustProxy = parseTrustProxy(env.TRUST_PROXY)

  let scopes: ScopeCatalogue
  try {
    scopes = ScopeCatalogue.fromConfiguration(env.SCOPES, env.PERSONAL_INTROSPECT_TOKENS)
  } catch (error) {
    throw new ConfigError(`invalid configuration: SCOPES ${(error as Error).message}`)
  }

  const publicUrl = (env.PUBLIC_URL !== '' ? env.PUBLIC_URL : `http://${hostForUrl(env.HOST)}:${env.PORT}`).replace(/\/+$/, '')

  return { ...env, TRUST_PROXY: trustProxy, publicUrl, scopes, embeddedDatabase: env.DATABASE_URL === '' }
}

/** proxy-addr's names for the loopback, link-local and unique-local ranges, which Fastify accepts too. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/**
 * TRUST_PROXY as Fastify's trustProxy takes it. `true` believes the whole X-Forwarded-For
 * header, whose first entries the client writes itself; a hop count or the proxies' addresses
 * make the client's address the one the last trusted proxy saw.
 */
function parseTrustProxy (value: string): TrustProxy {
  const setting = value.trim().toLowerCase()
  if (setting === 'true') return true
  if (setting === 'false' || setting === '') return false
  if (/^[0-9]{1,3}$/.test(setting)) return Number(setting)
  const entries = setting.split(',').map((entry) => entry.trim())
  if (entries.every(isProxyRange)) return entries
  throw new ConfigError(`invalid configuration: TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses or CIDR ranges (got "${value.slice(0, 100)}")`)
}

function isProxyRange (entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true
  const [address = '', bits, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  return bits === undefined || (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
}

interface SchemaError extends Error {
  errors?: Array<{ instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }>
}

/**
 * env-schema reports "env/PORT must be <= 65535"; for a choice (LOG_LEVEL, NODE_ENV) it reports
 * "must be equal to constant" once per choice, so those are folded into one list of the allowed values.
 */
function describeSchemaErrors (error: SchemaError): string {
  if (error.errors === undefined) return error.message.replace(/env\//g, '')
  const allowed = new Map<string, unknown[]>()
  const messages: string[] = []
  for (const { instancePath, keyword, message, params } of error.errors) {
    const variable = instancePath.replace(/^\//, '')
    if (keyword === 'const') allowed.set(variable, [...(allowed.get(variable) ?? []), params.allowedValue])
    else if (keyword !== 'anyOf' || !allowed.has(variable)) messages.push(`${variable} ${message ?? 'is invalid'}`)
  }
  for (const [variable, values] of allowed) messages.push(`${variable} must be one of ${values.join(', ')}`)
  return messages.join(', ')
}

function hostForUrl (host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
