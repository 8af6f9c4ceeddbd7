import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import { lockDataDir } from '../src/db/lock.js'
import { benchDigest, benchToken } from './tokens.js'

/** The part of a PGlite instance and of a pg client the seeder uses: both answer `{ rows }`. */
interface Sql {
  query: <T>(text: string, params?: unknown[]) => Promise<{ rows: T[] }>
}

/** The user who owns every seeded token (created with the CLI before seeding). */
export const BENCH_USERNAME = 'bench'
export const BENCH_TOKEN_SCOPES = ['read:tokens']
const BATCH = 10_000
const LIFETIME_DAYS = 30

/**
 * One statement per batch: the columns travel as arrays and `unnest` turns them into rows, so
 * a million tokens take a hundred round trips (on PGlite as on a PostgreSQL server) instead of
 * a million. Rows look like personal tokens created with the CLI: owned by the bench user,
 * issued by the internal application, live for 30 days.
 */
const INSERT_BATCH = `insert into access_tokens (id, name, digest, last_eight, scopes, user_id, application_id, created_at, expires_at)
  select id, name, digest, last_eight, $5::text[], $6::uuid, $7::uuid, now(), now() + make_interval(days => ${LIFETIME_DAYS})
  from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) as t(id, name, digest, last_eight)`

async function seedTokens (sql: Sql, count: number, onProgress: (done: number) => void): Promise<void> {
  const users = await sql.query<{ id: string }>('select id from users where username = $1', [BENCH_USERNAME])
  const applications = await sql.query<{ id: string }>('select id from applications where client_id = $1', ['internal'])
  const userId = users.rows[0]?.id
  const applicationId = applications.rows[0]?.id
  if (userId === undefined || applicationId === undefined) throw new Error('seeding needs the bench user and the internal application (created with the CLI first)')

  for (let start = 0; start < count; start += BATCH) {
    const end = Math.min(count, start + BATCH)
    const ids: string[] = []
    const names: string[] = []
    const digests: string[] = []
    const lastEights: string[] = []
    for (let index = start; index < end; index++) {
      const token = benchToken(index)
      ids.push(uuidv7())
      names.push(`bench-${index}`)
      digests.push(benchDigest(token))
      lastEights.push(token.slice(-8))
    }
    await sql.query(INSERT_BATCH, [ids, names, digests, lastEights, BENCH_TOKEN_SCOPES, userId, applicationId])
    onProgress(end)
  }
  // Fresh statistics, as a long-lived database would have.
  await sql.query('analyze access_tokens')
}

/** Seeds the embedded database: opens DATA_DIR with PGlite directly, under Tessera's lock (no server may run). */
export async function seedEmbedded (dataDir: string, count: number, onProgress: (done: number) => void): Promise<void> {
  const unlock = await lockDataDir(dataDir)
  try {
    const db = await PGlite.create(dataDir)
    try {
      await seedTokens(db, count, onProgress)
      await db.query('checkpoint')
    } finally {
      await db.close()
    }
  } finally {
    await unlock()
  }
}

export async function seedPostgres (url: string, count: number, onProgress: (done: number) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await seedTokens(client, count, onProgress)
    await client.query('checkpoint').catch(() => {}) // needs superuser or pg_checkpoint; a nicety only
  } finally {
    await client.end()
  }
}
