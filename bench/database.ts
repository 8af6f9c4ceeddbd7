import { join } from 'node:path'
import pg from 'pg'
import { seedEmbedded, seedPostgres } from './seed.js'

/**
 * Where a bench run keeps its data: a fresh database `tessera_bench_<time>` on the PostgreSQL
 * server of DATABASE_URL (dropped at the end), or else a fresh embedded DATA_DIR under the run's
 * temporary directory (removed with it).
 */
export interface BenchDatabase {
  kind: 'postgresql' | 'embedded'
  /** What Tessera and its CLI need to reach it: DATABASE_URL, or DATA_DIR. */
  env: Record<string, string>
  /** For the reference server's bare-pg route: the same database, reached its own way. */
  referenceEnv: Record<string, string>
  /** The pool size Tessera uses on it (the reference server's pg pool gets the same). */
  poolMax: number
  /** e.g. "PostgreSQL 15.4 …", or "embedded PGlite" */
  description: string
  create: () => Promise<void>
  seed: (count: number, onProgress: (done: number) => void) => Promise<void>
  drop: () => Promise<void>
}

async function withClient<T> (url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

/** A database on `serverUrl`'s server, named now (so it can be dropped whatever happens) and created by `create()`. */
export function postgresDatabase (serverUrl: string): BenchDatabase {
  const name = `tessera_bench_${Date.now()}_${process.pid}`
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const databaseUrl = url.toString()
  let dropped = false
  const database: BenchDatabase = {
    kind: 'postgresql',
    env: { DATABASE_URL: databaseUrl },
    referenceEnv: { BENCH_DATABASE_URL: databaseUrl, BENCH_POOL_MAX: '10' },
    // Tessera's default DATABASE_POOL_MAX.
    poolMax: 10,
    description: `PostgreSQL (${url.host}, database ${name})`,
    async create () {
      const version = await withClient(serverUrl, async (client) => {
        await client.query(`create database ${name}`)
        const result = await client.query<{ server_version: string }>('show server_version')
        return result.rows[0]?.server_version ?? 'unknown'
      })
      database.description = `PostgreSQL ${version} (${url.host}, database ${name})`
    },
    seed: async (count, onProgress) => { await seedPostgres(databaseUrl, count, onProgress) },
    async drop () {
      if (dropped) return
      dropped = true
      await withClient(serverUrl, async (client) => { await client.query(`drop database if exists ${name} with (force)`) })
    }
  }
  return database
}

export function embeddedDatabase (workDir: string): BenchDatabase {
  const dataDir = join(workDir, 'data')
  return {
    kind: 'embedded',
    env: { DATA_DIR: dataDir },
    referenceEnv: { BENCH_DATA_DIR: dataDir, BENCH_POOL_MAX: '1' },
    // PGlite serves one connection; Tessera's pool holds one on it.
    poolMax: 1,
    description: 'embedded PGlite (PostgreSQL in WebAssembly, inside the server process)',
    // The CLI's first command (migrate) creates it.
    create: async () => {},
    seed: async (count, onProgress) => { await seedEmbedded(dataDir, count, onProgress) },
    // The directory goes with the run's temporary directory.
    drop: async () => {}
  }
}
