/**
 * The reference: a bare Fastify 5 server that does what any introspection endpoint must do at
 * the least — parse the form body against a schema, serialise an RFC 7662-shaped answer through
 * a response schema — and, with a database, one unique-index lookup per request with raw `pg`.
 * It measures the floor under Tessera on the same machine, in the same run: the framework's own
 * limit, so its logger is off (BENCH_LOGGER=warn turns on the logger at warn, for the extra,
 * labelled `bare-post-logger` row only).
 *
 *   POST /introspect  form `token=…`: a constant answer; or, when BENCH_DATABASE_URL or
 *                     BENCH_DATA_DIR is set, the answer read with Tessera's lookup statement
 *   GET  /info        a constant answer (the floor under the bearer routes)
 *
 * The bench compiles it alone to dist/bench/ and runs it with plain `node` (bench/build.ts),
 * so it imports packages and bench/wire.ts only.
 */
import { createHmac } from 'node:crypto'
import Fastify from 'fastify'
import formbody from '@fastify/formbody'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { IntrospectBody, Introspection } from './wire.js'

const port = Number(process.env.PORT ?? 3100)
const hmacKey = process.env.TOKEN_HMAC_KEY ?? ''
const databaseUrl = process.env.BENCH_DATABASE_URL ?? ''
const dataDir = process.env.BENCH_DATA_DIR ?? ''
const poolMax = Number(process.env.BENCH_POOL_MAX ?? 10)

const now = Math.floor(Date.now() / 1000)
const CONSTANT = {
  active: true,
  scope: 'read:tokens',
  client_id: 'internal',
  username: 'bench',
  token_type: 'Bearer',
  exp: now + 86400,
  iat: now,
  sub: '01a2b3c4-0000-7000-8000-000000000000',
  aud: ['bench'],
  iss: `http://127.0.0.1:${port}`
}

/** The statement of Tessera's cache miss (TokenStore.token in src/services/token-store.ts). */
const LOOKUP = {
  name: 'token_lookup',
  text: `select t.id, t.scopes, t.audience, t.user_id, u.username, u.suspended_at,
  t.application_id, a.client_id, t.created_at, t.expires_at, t.revoked_at
  from access_tokens t
  join applications a on a.id = t.application_id
  left join users u on u.id = t.user_id
  where t.digest = $1`
}

interface Row {
  id: string
  scopes: string[]
  audience: string[] | null
  user_id: string | null
  username: string | null
  client_id: string
  created_at: Date
  expires_at: Date | null
  revoked_at: Date | null
}

/** The embedded database, served on a loopback port the way src/db/embedded.ts does it. */
async function serveDataDir (): Promise<{ url: string, close: () => Promise<void> }> {
  const db = await PGlite.create(dataDir)
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 })
  await server.start()
  return {
    url: `postgresql://postgres@${server.getServerConn()}/postgres`,
    async close () {
      await server.stop()
      await db.close()
    }
  }
}

const embedded = dataDir !== '' ? await serveDataDir() : undefined
const connectionString = embedded?.url ?? databaseUrl
const pool = connectionString !== '' ? new pg.Pool({ connectionString, max: poolMax }) : undefined

const app = Fastify({ logger: process.env.BENCH_LOGGER === 'warn' ? { level: 'warn' } : false })
await app.register(formbody)

app.post('/introspect', {
  schema: { body: IntrospectBody, response: { 200: Introspection } }
}, async function (request) {
  if (pool === undefined) return CONSTANT
  const { token } = request.body as { token: string }
  const digest = createHmac('sha256', hmacKey).update(token).digest('hex')
  const { rows } = await pool.query<Row>({ ...LOOKUP, values: [digest] })
  const row = rows[0]
  if (row === undefined || row.revoked_at !== null || (row.expires_at !== null && row.expires_at.getTime() <= Date.now())) return { active: false }
  return {
    active: true,
    scope: row.scopes.join(' '),
    client_id: row.client_id,
    ...(row.username !== null ? { username: row.username } : {}),
    token_type: 'Bearer',
    ...(row.expires_at !== null ? { exp: Math.floor(row.expires_at.getTime() / 1000) } : {}),
    iat: Math.floor(row.created_at.getTime() / 1000),
    sub: row.user_id ?? row.client_id,
    ...(row.audience !== null ? { aud: row.audience } : {}),
    iss: CONSTANT.iss
  }
})

app.get('/info', { schema: { response: { 200: Introspection } } }, async function () {
  return CONSTANT
})

let closing = false
async function close (): Promise<void> {
  if (closing) return
  closing = true
  await app.close()
  await pool?.end()
  await embedded?.close()
  process.exit(0)
}
process.once('SIGTERM', () => { close().catch(() => process.exit(1)) })
process.once('SIGINT', () => { close().catch(() => process.exit(1)) })

await app.listen({ host: '127.0.0.1', port })
