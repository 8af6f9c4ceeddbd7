import t from 'tap'
import pg from 'pg'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { UsageRecorder } from '../../src/services/usage-recorder.js'
import { basic, bearer, build, buildWith, createTestDatabase, introspection, seedApplication, seedToken, seedUser } from '../helper.js'

interface UsageRow { last_used_at: Date | null, last_used_ip: string | null }

const HOLDER_IP = '203.0.113.7'
const OTHER_IP = '198.51.100.20'

async function usageOf (app: FastifyInstance, id: string): Promise<UsageRow> {
  // Raw queries hand timestamps back as text; read them as dates.
  const [row] = await app.orm.em.getConnection().execute<Array<{ last_used_at: string | Date | null, last_used_ip: string | null }>>('select last_used_at, last_used_ip from access_tokens where id = ?', [id])
  if (row === undefined) throw new Error(`no token ${id}`)
  return { last_used_at: row.last_used_at === null ? null : new Date(row.last_used_at), last_used_ip: row.last_used_ip }
}

async function tokenInfo (app: FastifyInstance, token: string, remoteAddress = HOLDER_IP): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) }, remoteAddress })
  if (res.statusCode !== 200) throw new Error(`token/info answered ${res.statusCode}: ${res.body}`)
  return res
}

async function introspect (app: FastifyInstance, token: string, authorization: string, remoteAddress = OTHER_IP): Promise<void> {
  const res = await introspection(app, token, authorization, {}, { remoteAddress })
  if (res.statusCode !== 200 || (res.json() as { active: boolean }).active !== true) throw new Error(`introspection answered ${res.statusCode}: ${res.body}`)
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A new connection to `url`. The embedded PGlite serves a single connection and frees the
 * slot of a closed pool a moment after the close, so the first attempts may be turned away.
 */
async function connectWhenFree (url: string): Promise<pg.Client> {
  const deadline = Date.now() + 3000
  for (;;) {
    const client = new pg.Client({ connectionString: url })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('select 1')
      return client
    } catch (error) {
      await client.end().catch(() => {})
      if (Date.now() > deadline) throw error
      await sleep(50)
    }
  }
}

// A flush interval of an hour: within this file only app.usage.flush() writes.
const app = await build(t, { LAST_USED_FLUSH_INTERVAL: '3600' })
const resourceServer = await seedApplication(app, ['introspect'])
const asResourceServer = basic(resourceServer.clientId, resourceServer.clientSecret)
// An administrator: her token introspects below (PERSONAL_INTROSPECT_TOKENS=admins).
await seedUser(app, 'alice', { admin: true })

t.test('many validations of one token cost one write per flush', async (t) => {
  const used = await seedToken(app, 'alice', { name: 'busy' })
  await app.usage.flush()
  const written = app.usage.written
  const start = new Date()
  for (let i = 0; i < 20; i++) await tokenInfo(app, used.token)
  for (let i = 0; i < 50; i++) await introspect(app, used.token, asResourceServer)
  t.strictSame(await usageOf(app, used.id), { last_used_at: null, last_used_ip: null }, 'nothing is written before the flush')
  t.equal(app.usage.pending, 1, 'one note for the token, however often it was used')

  t.equal(await app.usage.flush(), 1, 'one row written')
  t.equal(app.usage.written - written, 1)
  t.equal(app.usage.pending, 0)
  const row = await usageOf(app, used.id)
  t.ok(row.last_used_at !== null && row.last_used_at.getTime() >= start.getTime() && row.last_used_at.getTime() <= Date.now(), 'last_used_at is the time of the latest use')
  t.equal(row.last_used_ip, HOLDER_IP, 'the address of the token/info call, kept through the introspections after it')

  t.equal(await app.usage.flush(), 0, 'a flush with nothing noted writes nothing')
  t.equal(app.usage.written - written, 1)
})

t.test('last_used_ip', async (t) => {
  const used = await seedToken(app, 'alice', { name: 'travelling' })

  t.test('is kept across flushes when only introspection used the token since', async (t) => {
    await tokenInfo(app, used.token, HOLDER_IP)
    await app.usage.flush()
    const first = await usageOf(app, used.id)
    await sleep(5)
    await introspect(app, used.token, asResourceServer)
    await app.usage.flush()
    const second = await usageOf(app, used.id)
    t.equal(second.last_used_ip, HOLDER_IP, 'introspection does not know the holder\'s address')
    t.ok((second.last_used_at?.getTime() ?? 0) > (first.last_used_at?.getTime() ?? Infinity), 'but moves last_used_at')
  })

  t.test('follows the holder when it calls from elsewhere', async (t) => {
    await tokenInfo(app, used.token, OTHER_IP)
    await app.usage.flush()
    t.equal((await usageOf(app, used.id)).last_used_ip, OTHER_IP)
  })

  t.test('is recorded for API use, and for a bearer token that introspects', async (t) => {
    const reader = await seedToken(app, 'alice', { name: 'api', scopes: ['read:tokens'] })
    const prober = await seedToken(app, 'alice', { name: 'prober', scopes: ['introspect'] })
    const probed = await seedToken(app, 'alice', { name: 'probed' })
    const listing = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(reader.token) }, remoteAddress: '192.0.2.1' })
    t.equal(listing.statusCode, 200)
    await introspect(app, probed.token, bearer(prober.token), '192.0.2.2')
    t.equal(await app.usage.flush(), 3, 'three tokens used, three rows')
    t.equal((await usageOf(app, reader.id)).last_used_ip, '192.0.2.1')
    t.equal((await usageOf(app, prober.id)).last_used_ip, '192.0.2.2', 'the introspecting token is used from the caller\'s address')
    t.match(await usageOf(app, probed.id), { last_used_at: Date, last_used_ip: null }, 'the introspected token gets the time only')
  })

  t.test('failed validations record nothing', async (t) => {
    const revoked = await seedToken(app, 'alice', { name: 'revoked' })
    await app.orm.em.getConnection().execute('update access_tokens set revoked_at = now() where id = ?', [revoked.id])
    const res = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(revoked.token) } })
    t.equal(res.statusCode, 401)
    t.equal(app.usage.pending, 0)
    t.strictSame(await usageOf(app, revoked.id), { last_used_at: null, last_used_ip: null })
  })
})

t.test('the review listing shows last_used and last_used_ip after the flush', async (t) => {
  const reader = await seedToken(app, 'alice', { name: 'reviewer', scopes: ['read:tokens'] })
  const view = async (): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/tokens/${reader.id}`, headers: { authorization: bearer(reader.token) }, remoteAddress: HOLDER_IP })
    return res.json()
  }
  t.match(await view(), { last_used: null, last_used_at: null, last_used_ip: null }, 'approximate: not yet flushed')
  await app.usage.flush()
  const [row] = await app.orm.em.getConnection().execute<Array<{ at: string }>>('select to_char(last_used_at at time zone \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\') as at from access_tokens where id = ?', [reader.id])
  const shown = await view()
  t.equal(shown.last_used, row?.at)
  t.equal(shown.last_used_at, row?.at)
  t.equal(shown.last_used_ip, HOLDER_IP)
})

t.test('the recorder itself', async (t) => {
  t.test('never moves last_used_at backwards', async (t) => {
    const used = await seedToken(app, 'alice', { name: 'monotonic' })
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0 })
    const later = new Date(Date.now() + 60_000)
    recorder.record(used.id, '192.0.2.10', later)
    t.equal(await recorder.flush(), 1)
    recorder.record(used.id, '192.0.2.11', new Date(later.getTime() - 1000))
    t.equal(await recorder.flush(), 0, 'an older note is not written')
    t.strictSame(await usageOf(app, used.id), { last_used_at: later, last_used_ip: '192.0.2.10' })
  })

  t.test('the latest note of a token wins and a note without address keeps the noted one', async (t) => {
    const used = await seedToken(app, 'alice', { name: 'latest' })
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0 })
    const at = new Date(Date.now() + 120_000)
    recorder.record(used.id, '192.0.2.20', new Date(at.getTime() - 5000))
    recorder.record(used.id, null, at)
    t.equal(recorder.pending, 1)
    await recorder.flush()
    t.strictSame(await usageOf(app, used.id), { last_used_at: at, last_used_ip: '192.0.2.20' })
  })

  t.test('concurrent flushes share one write', async (t) => {
    const used = await seedToken(app, 'alice', { name: 'shared' })
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0 })
    recorder.record(used.id, null)
    t.strictSame(await Promise.all([recorder.flush(), recorder.flush()]), [1, 1])
    t.equal(recorder.written, 1)
  })

  t.test('writes many tokens in one flush, beyond one statement\'s batch', async (t) => {
    const ids = (await app.orm.em.getConnection().execute<Array<{ id: string }>>('select id from access_tokens')).map((row) => row.id)
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0 })
    const at = new Date(Date.now() + 3_600_000)
    // Tokens that do not exist (any more) are skipped, not an error.
    const missing = Array.from({ length: 600 }, (_, i) => `0190aaaa-bbbb-7ccc-8ddd-${String(i).padStart(12, '0')}`)
    for (const id of [...ids, ...missing]) recorder.record(id, null, at)
    t.equal(await recorder.flush(), ids.length)
    const [row] = await app.orm.em.getConnection().execute<Array<{ n: number }>>('select count(*)::int as n from access_tokens where last_used_at = ?', [at])
    t.equal(row?.n, ids.length)
  })

  t.test('beyond maxPending, new tokens wait while known ones are still updated', async (t) => {
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0, maxPending: 2 })
    const [a, b, c] = ['0190aaaa-0000-7000-8000-000000000001', '0190aaaa-0000-7000-8000-000000000002', '0190aaaa-0000-7000-8000-000000000003']
    recorder.record(a as string, null)
    recorder.record(b as string, null)
    recorder.record(c as string, null)
    t.equal(recorder.pending, 2)
    recorder.record(a as string, '192.0.2.30')
    t.equal(recorder.pending, 2)
  })

  t.test('a failed flush keeps the notes for the next attempt', async (t) => {
    const used = await seedToken(app, 'alice', { name: 'retried' })
    const errors: unknown[] = []
    const recorder = new UsageRecorder(app.orm.em, { intervalSeconds: 0, onError: (error) => { errors.push(error) } })
    recorder.record('not-a-uuid', null)
    recorder.record(used.id, '192.0.2.40')
    await t.rejects(recorder.flush())
    t.equal(recorder.pending, 2, 'both notes kept')
    t.equal(recorder.written, 0)
    t.strictSame(await usageOf(app, used.id), { last_used_at: null, last_used_ip: null })
  })
})

t.test('the timer flushes by itself once per LAST_USED_FLUSH_INTERVAL', async (t) => {
  const timed = await build(t, { LAST_USED_FLUSH_INTERVAL: '1' })
  await seedUser(timed, 'bob')
  const used = await seedToken(timed, 'bob', { name: 'timed' })
  /** Waits (at most 1.5 s) for the timer to write something after `written` rows. */
  const nextFlush = async (written: number): Promise<number> => {
    const deadline = Date.now() + 1500
    while (timed.usage.written === written && Date.now() < deadline) await sleep(20)
    return timed.usage.written - written
  }

  const before = timed.usage.written
  await tokenInfo(timed, used.token, OTHER_IP)
  t.equal(await nextFlush(before), 1, 'written within 1.5 s without an explicit flush')
  t.match(await usageOf(timed, used.id), { last_used_at: Date, last_used_ip: OTHER_IP })

  const afterFirst = timed.usage.written
  await Promise.all(Array.from({ length: 30 }, async () => await tokenInfo(timed, used.token, HOLDER_IP)))
  t.equal(await nextFlush(afterFirst), 1, 'thirty validations, one write')
  t.equal((await usageOf(timed, used.id)).last_used_ip, HOLDER_IP)

  const settled = timed.usage.written
  await sleep(1200)
  t.equal(timed.usage.written, settled, 'an interval without use writes nothing')
})

t.test('the buffer is flushed when the application closes', async (t) => {
  const db = await createTestDatabase()
  const { app: closing } = await buildWith(t, { LAST_USED_FLUSH_INTERVAL: '3600' }, { db })
  t.teardown(async () => { await db.close() })
  await seedUser(closing, 'carol')
  const used = await seedToken(closing, 'carol', { name: 'closing' })
  const start = Date.now()
  await tokenInfo(closing, used.token)
  t.equal(closing.usage.pending, 1)
  t.equal((await usageOf(closing, used.id)).last_used_at, null)
  await closing.close()

  const client = await connectWhenFree(db.url)
  try {
    const { rows } = await client.query<UsageRow>('select last_used_at, last_used_ip from access_tokens where id = $1', [used.id])
    t.equal(rows.length, 1)
    t.equal(rows[0]?.last_used_ip, HOLDER_IP)
    const at = rows[0]?.last_used_at?.getTime() ?? 0
    t.ok(at >= start - 1000 && at <= Date.now(), 'last_used_at was written on close')
  } finally {
    await client.end()
  }
})
