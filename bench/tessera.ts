import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { BENCH_USERNAME } from './seed.js'
import { BENCH_HMAC_KEY, BENCH_TOKEN_PREFIX } from './tokens.js'

const run = promisify(execFile)

export const REPO = join(import.meta.dirname, '..')
export const TESSERA_SERVER = join(REPO, 'dist', 'src', 'server.js')
export const TESSERA_CLI = join(REPO, 'dist', 'src', 'cli', 'index.js')

/**
 * Introspection is rate-limited per caller (600000 a minute by default, i.e. 10000/s on
 * average): a long bench run could reach it. The limiter still counts every request; it
 * just never refuses one.
 */
const UNREACHABLE_RATE_LIMIT = '1000000000'

/**
 * The environment of every Tessera process of a run (server and CLI). Built from nothing but
 * PATH and HOME, so settings in the caller's shell (CACHE_TTL=…) cannot skew the figures; the
 * processes also run in the run's temporary directory, away from any `.env`.
 */
export function tesseraEnv (database: Record<string, string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    TOKEN_PREFIX: BENCH_TOKEN_PREFIX,
    TOKEN_HMAC_KEY: BENCH_HMAC_KEY,
    RATE_LIMIT_INTROSPECT_PER_CLIENT: UNREACHABLE_RATE_LIMIT,
    // To compare V8 settings (e.g. --max-semi-space-size) without editing the bench.
    ...(process.env.TESSERA_NODE_OPTIONS !== undefined ? { NODE_OPTIONS: process.env.TESSERA_NODE_OPTIONS } : {}),
    ...database,
    ...extra
  }
}

export interface Provisioned {
  clientId: string
  clientSecret: string
}

/**
 * Applies the migrations and creates, with Tessera's own CLI, the internal application (issuer
 * of personal tokens), the user who owns the seeded tokens and the application that introspects.
 */
export async function provision (env: NodeJS.ProcessEnv, cwd: string): Promise<Provisioned> {
  const cli = async (...args: string[]): Promise<string> => {
    try {
      const { stdout } = await run(process.execPath, [TESSERA_CLI, ...args], { env, cwd })
      return stdout
    } catch (error) {
      const failed = error as Error & { stderr?: string }
      throw new Error(`tessera ${args.join(' ')} failed: ${failed.stderr ?? failed.message}`)
    }
  }
  await cli('migrate')
  await cli('ensure-internal-app')
  await cli('user', 'create', '--username', BENCH_USERNAME)
  const created = await cli('application', 'create', '--name', 'bench-introspector', '--scopes', 'introspect')
  const clientId = /^client_id:\s+(\S+)/m.exec(created)?.[1]
  const clientSecret = /^client_secret:\s+(\S+)/m.exec(created)?.[1]
  if (clientId === undefined || clientSecret === undefined) throw new Error(`could not read the client credentials from:\n${created}`)
  return { clientId, clientSecret }
}
