import envSchema from 'env-schema'
import { EnvSchema, type Env } from '../schemas/env.js'
import { ScopeCatalogue } from './services/scopes.js'

/** Thrown when a setting is invalid; the message always names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface Config extends Env {
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
    env = envSchema<Env>({ schema: EnvSchema, data: source, dotenv: options.dotenv ?? false })
  } catch (error) {
    // env-schema reports "env/PORT must be <= 65535" or "env must have required property 'X'".
    throw new ConfigError(`invalid configuration: ${(error as Error).message.replace(/env\//g, '')}`)
  }

  if (env.TOKEN_HMAC_KEY !== '' && env.TOKEN_HMAC_KEY.length < 32) {
    throw new ConfigError('invalid configuration: TOKEN_HMAC_KEY must be at least 32 characters (or unset)')
  }
  if (env.TOKEN_MAX_LIFETIME > 0 && (env.TOKEN_DEFAULT_LIFETIME === 0 || env.TOKEN_DEFAULT_LIFETIME > env.TOKEN_MAX_LIFETIME)) {
    throw new ConfigError('invalid configuration: TOKEN_DEFAULT_LIFETIME must be between 1 and TOKEN_MAX_LIFETIME when TOKEN_MAX_LIFETIME is set')
  }

  let scopes: ScopeCatalogue
  try {
    scopes = ScopeCatalogue.fromConfiguration(env.SCOPES)
  } catch (error) {
    throw new ConfigError(`invalid configuration: SCOPES ${(error as Error).message}`)
  }

  const publicUrl = (env.PUBLIC_URL !== '' ? env.PUBLIC_URL : `http://${hostForUrl(env.HOST)}:${env.PORT}`).replace(/\/+$/, '')

  return { ...env, publicUrl, scopes, embeddedDatabase: env.DATABASE_URL === '' }
}

function hostForUrl (host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
