import { performance } from 'node:perf_hooks'
import type { EventSubscriber } from '@mikro-orm/core'
import type { LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import { DeadlineClient, KEEPALIVE_DELAY_MS, serverTimeouts } from '../../src/db/deadlines.js'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { AccessToken } from '../../src/entities/access-token.js'
import { AuditEvent } from '../../src/entities/audit-event.js'
import { User } from '../../src/entities/user.js'
import { isDatabaseUnavailable } from '../../src/http/error-reply.js'
import { assertProblem, basic, bearer, buildWith, createTestDatabase, introspection, seedApplication, seedToken, seedUser } from '../helper.js'
import { startProxy } from '../proxy.js'

/*
 * Timeouts everywhere (issue 12): writes through the ORM answer 503 within DATABASE_TIMEOUT_MS
 * during a network blackhole and leave nothing half-written, and no stuck statement holds the
 * pool once the database is back. Before, a revoke during a blackhole had no answer after 60 s,
 * and after the network healed /readyz and uncached introspection stayed 503 for over a minute.
 *
 * As in outage.test.ts, the app reaches its database only through a TCP proxy this test controls
 * (test/proxy.ts), in the configuration it runs with on each database: a pool of
 * DATABASE_POOL_MAX connections on the server named by DATABASE_URL, one connection to an
 * embedded PGlite without it. The network is cut at three points of a write:
 *
 * - before the request: its first statement (reading the caller) gets no answer;
 * - right after BEGIN: the transaction is open on the server, the next statement gets no answer;
 * - at COMMIT: every write of the transaction has reached the server, only COMMIT is lost.
 *
 * "Nothing half-written" means exactly: the write's change is absent once the network is back
 * (the token still active, no new user, no new token) and so is its audit event. Statements the
 * database received before the cut are rolled back: the app drops the connection when its
 * deadline passes, the proxy then closes both sides, and PostgreSQL (PGlite's socket server
 * likewise) aborts the open transaction of a closed connection; what was sent during the cut
 * never arrives. In a real partition the server may only learn of it from
 * idle_in_transaction_session_timeout (tested below on the server), and a COMMIT it received
 * whose answer was lost is the one case where a 503 went with a committed write.
 */
t.setTimeout(240_000)

const EMBEDDED = (process.env.DATABASE_URL ?? '') === ''
const TIMEOUT_MS = 500
/** DATABASE_TIMEOUT_MS plus a margin for a loaded machine (as in outage.test.ts). */
const BOUND_MS = 2000
/**
 * From the end of the blackhole to /readyz and an uncached introspection answering 200: a
 * connection attempt and a statement, each within DATABASE_TIMEOUT_MS, plus the same margin.
 */
const RECOVERY_BOUND_MS = 2 * TIMEOUT_MS + BOUND_MS
const POOL_MAX = EMBEDDED ? 1 : 2
const PASSWORD = 'correct horse battery'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

let targetUrl: string
if (EMBEDDED) {
  const embedded = await startEmbeddedPostgres('memory://')
  t.teardown(async () => { await embedded.close() })
  targetUrl = embedded.url
} else {
  const db = await createTestDatabase()
  t.teardown(async () => { await db.close() })
  targetUrl = db.url
}
const target = new URL(targetUrl)
const proxy = await startProxy({ host: target.hostname, port: Number(target.port) })
// Teardowns run last-in first-out: the app closes (through a working proxy) before it goes.
t.teardown(async () => { await proxy.close() })

const { app } = await buildWith(t, {
  DATABASE_TIMEOUT_MS: String(TIMEOUT_MS),
  DATABASE_POOL_MAX: String(POOL_MAX),
  // Cached credentials outlast every cut: what is measured is the write's own statements.
  CACHE_TTL: '300',
  CACHE_DEGRADED_TTL: '300',
  CLIENT_CREDENTIAL_CACHE_TTL: '300'
}, { db: { url: proxy.url(targetUrl), embedded: EMBEDDED, close: async () => {} } })

/** Where the next write's network cut happens, once armed (a MikroORM transaction event). */
let cutAt: 'afterTransactionStart' | 'beforeTransactionCommit' | null = null
function cutIf (point: typeof cutAt): void {
  if (cutAt !== point) return
  cutAt = null
  proxy.blackhole()
}
const networkCut: EventSubscriber = {
  afterTransactionStart () { cutIf('afterTransactionStart') },
  beforeTransactionCommit () { cutIf('beforeTransactionCommit') }
}
app.orm.em.getEventManager().registerSubscriber(networkCut)

await seedUser(app, 'root', { admin: true })
await seedUser(app, 'alice', { password: PASSWORD })
const admin = await seedToken(app, 'root', { name: 'provisioning', scopes: ['admin'] })
const owner = await seedToken(app, 'alice', { name: 'owner', scopes: ['read:tokens', 'write:tokens'] })
const resourceServer = await seedApplication(app, ['introspect'])
const resourceAuth = basic(resourceServer.clientId, resourceServer.clientSecret)
// The callers' tokens and the resource server's credentials, cached from here on (setup, not under test).
for (const res of [
  await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(owner.token) } }),
  await app.inject({ method: 'GET', url: '/api/v1/admin/users', headers: { authorization: bearer(admin.token) } }),
  await introspection(app, owner.token, resourceAuth)
]) {
  if (res.statusCode !== 200) throw new Error(`setup: ${res.statusCode} ${res.body}`)
}

async function timed<T> (run: () => Promise<T>): Promise<{ result: T, ms: number }> {
  const start = performance.now()
  const result = await run()
  return { result, ms: performance.now() - start }
}

async function failure (run: () => Promise<unknown>): Promise<{ error: unknown, ms: number }> {
  const start = performance.now()
  try {
    await run()
  } catch (error) {
    return { error, ms: performance.now() - start }
  }
  throw new Error('expected a failure')
}

/** Polls until `predicate` holds; false after `timeout` ms. */
async function eventually (predicate: () => Promise<boolean>, timeout: number): Promise<boolean> {
  const deadline = performance.now() + timeout
  while (!await predicate()) {
    if (performance.now() > deadline) return false
    await sleep(50)
  }
  return true
}

async function readyzStatus (): Promise<number> {
  return (await app.inject({ method: 'GET', url: '/readyz' })).statusCode
}

async function auditEvents (): Promise<number> {
  return await app.orm.em.fork().count(AuditEvent, {})
}

/** A token nothing has looked up yet: introspecting it needs the database. */
async function uncachedToken (t: Test): Promise<string> {
  const { token } = await seedToken(app, 'alice', { scopes: ['read:repository'] })
  t.equal(app.services.cache.get(app.services.resolver.cacheKey(token)), undefined, 'a token not cached yet')
  return token
}

/**
 * After `proxy.restore()` at `restoredAt`: /readyz turns 200 and an uncached introspection answers,
 * both within RECOVERY_BOUND_MS — no stuck connection is left in the pool to fail them.
 */
async function assertRecovered (t: Test, restoredAt: number, token: string): Promise<void> {
  const ready = await eventually(async () => await readyzStatus() === 200, 15_000)
  const readyMs = performance.now() - restoredAt
  t.ok(ready && readyMs < RECOVERY_BOUND_MS, `/readyz is 200 ${Math.round(readyMs)} ms after the network came back (bound ${RECOVERY_BOUND_MS} ms)`)
  const res = await introspection(app, token, resourceAuth)
  const answeredMs = performance.now() - restoredAt
  t.equal(res.statusCode, 200, 'an uncached introspection answers')
  t.match(res.json(), { active: true, username: 'alice' })
  t.ok(answeredMs < RECOVERY_BOUND_MS, `within ${Math.round(answeredMs)} ms of the network coming back (bound ${RECOVERY_BOUND_MS} ms)`)
}

interface Write {
  what: string
  /** Sets up the write's subject while the database is up; answers the request and the checks. */
  prepare: () => Promise<{
    send: () => Promise<LightMyRequestResponse>
    succeeded: number
    /** The write's change is absent. */
    assertAbsent: (t: Test) => Promise<void>
  }>
}

let serial = 0

/** A token of alice's that a revoke targets; after a failed revoke it is still active, in the database and to introspection. */
async function revocable (): Promise<{ id: string, assertAbsent: (t: Test) => Promise<void> }> {
  const victim = await seedToken(app, 'alice', { scopes: ['read:repository'] })
  return {
    id: victim.id,
    async assertAbsent (t) {
      t.equal((await app.orm.em.fork().findOneOrFail(AccessToken, victim.id)).revokedAt, null, 'the token is not revoked')
      t.match((await introspection(app, victim.token, resourceAuth)).json(), { active: true }, 'it introspects as active')
    }
  }
}

const WRITES: Write[] = [
  {
    what: 'a revoke (DELETE /api/v1/users/{username}/tokens/{id}, with the owner\'s token)',
    async prepare () {
      const victim = await revocable()
      return {
        send: async () => await app.inject({ method: 'DELETE', url: `/api/v1/users/alice/tokens/${victim.id}`, headers: { authorization: bearer(owner.token) } }),
        succeeded: 204,
        assertAbsent: victim.assertAbsent
      }
    }
  },
  {
    what: 'an invalidation (POST /api/v1/tokens/{id}/invalidate)',
    async prepare () {
      const victim = await revocable()
      return {
        send: async () => await app.inject({ method: 'POST', url: `/api/v1/tokens/${victim.id}/invalidate`, headers: { authorization: bearer(owner.token) } }),
        succeeded: 200,
        assertAbsent: victim.assertAbsent
      }
    }
  },
  {
    what: 'an admin user creation (POST /api/v1/admin/users)',
    async prepare () {
      const username = `newcomer${++serial}`
      return {
        send: async () => await app.inject({ method: 'POST', url: '/api/v1/admin/users', headers: { authorization: bearer(admin.token) }, payload: { username, password: PASSWORD } }),
        succeeded: 201,
        async assertAbsent (t) {
          t.equal(await app.orm.em.fork().count(User, { username }), 0, 'no such user')
        }
      }
    }
  },
  {
    what: 'a token creation (POST /api/v1/users/{username}/tokens, with the password)',
    async prepare () {
      const name = `created-${++serial}`
      return {
        send: async () => await app.inject({ method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: basic('alice', PASSWORD) }, payload: { name, scopes: ['read:tokens'] } }),
        succeeded: 201,
        async assertAbsent (t) {
          t.equal(await app.orm.em.fork().count(AccessToken, { name }), 0, 'no such token')
        }
      }
    }
  }
]

const CUTS = [
  { point: 'before the request', arm: () => { proxy.blackhole() } },
  { point: 'right after BEGIN', arm: () => { cutAt = 'afterTransactionStart' } },
  { point: 'at COMMIT, after every write of the transaction reached the database', arm: () => { cutAt = 'beforeTransactionCommit' } }
]

for (const write of WRITES) {
  t.test(`${write.what} during a blackhole answers 503 within DATABASE_TIMEOUT_MS (it hung past 60 s), leaves nothing half-written, and the app recovers in seconds`, async (t) => {
    for (const cut of CUTS) {
      await t.test(`the network cut ${cut.point}`, async (t) => {
        t.teardown(() => { cutAt = null; proxy.restore() })
        const subject = await write.prepare()
        const token = await uncachedToken(t)
        const audited = await auditEvents()

        cut.arm()
        const { result, ms } = await timed(subject.send)
        t.equal(proxy.mode, 'blackhole', 'the network was cut where intended')
        assertProblem(t, result, 503, 'TESSERA_DATABASE_UNAVAILABLE')
        t.ok(ms < BOUND_MS, `answered in ${Math.round(ms)} ms (DATABASE_TIMEOUT_MS is ${TIMEOUT_MS}, the bound ${BOUND_MS})`)

        const restoredAt = performance.now()
        proxy.restore()
        await assertRecovered(t, restoredAt, token)
        await subject.assertAbsent(t)
        t.equal(await auditEvents(), audited, 'and no audit event for it')
        t.equal((await subject.send()).statusCode, subject.succeeded, 'the same write succeeds now')
      })
    }
  })
}

t.test('a transaction that stalls fails within DATABASE_TIMEOUT_MS, and its connection is discarded: neither handed out again nor kept checked out (the pool ran dry)', async (t) => {
  const pool = await app.services.store.pool()
  const acquired: unknown[] = []
  const removed = new Set<unknown>()
  const onAcquire = (client: unknown): void => { acquired.push(client) }
  const onRemove = (client: unknown): void => { removed.add(client) }
  pool.on('acquire', onAcquire)
  pool.on('remove', onRemove)
  t.teardown(() => {
    pool.off('acquire', onAcquire)
    pool.off('remove', onRemove)
    proxy.restore()
  })
  const victim = await revocable()

  // One more stalled transaction than the pool has connections: a leaked one would block the next.
  const stalled: unknown[] = []
  for (let attempt = 1; attempt <= POOL_MAX + 1; attempt++) {
    const { error, ms } = await failure(async () => await app.orm.em.fork().transactional(async (em) => {
      stalled.push(acquired.at(-1))
      await em.nativeUpdate(AccessToken, { id: victim.id }, { revokedAt: new Date() })
      proxy.blackhole()
      await em.execute('select 1')
    }))
    t.ok(isDatabaseUnavailable(error), `stalled transaction ${attempt}: a database-unavailable error (${String(error)})`)
    t.ok(ms < BOUND_MS, `stalled transaction ${attempt}: failed after ${Math.round(ms)} ms (bound ${BOUND_MS})`)
    proxy.restore()
  }
  t.equal(new Set(stalled).size, POOL_MAX + 1, 'each ran on a connection of its own')
  t.ok(await eventually(async () => stalled.every((client) => removed.has(client)), BOUND_MS), 'every stalled connection left the pool')
  t.ok(pool.totalCount <= POOL_MAX, `the pool holds ${pool.totalCount} connections`)

  const handedOut = acquired.length
  for (let n = 0; n < 2 * POOL_MAX + 1; n++) await app.orm.em.fork().execute('select 1')
  t.notOk(acquired.slice(handedOut).some((client) => stalled.includes(client)), 'no stalled connection is handed out again')
  t.equal(pool.waitingCount, 0, 'nobody waits for a connection')
  await victim.assertAbsent(t)
})

t.test('every connection the pool opens carries the deadlines and keepalive', async (t) => {
  const pool = await app.services.store.pool()
  t.match(pool.options, {
    Client: DeadlineClient,
    connectionTimeoutMillis: TIMEOUT_MS,
    query_timeout: TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS
  })
  const [session] = await app.orm.em.fork().execute<Array<{ statement: string, idle: string }>>(
    "select current_setting('statement_timeout') as statement, current_setting('idle_in_transaction_session_timeout') as idle")
  if (EMBEDDED) {
    // Not sent to PGlite, which would neither apply nor enforce them (src/db/deadlines.ts).
    t.equal(pool.options.statement_timeout, undefined)
    t.equal(pool.options.idle_in_transaction_session_timeout, undefined)
    t.strictSame(session, { statement: '0', idle: '0' })
  } else {
    t.strictSame(serverTimeouts(TIMEOUT_MS), { statement_timeout: 450, idle_in_transaction_session_timeout: 5000 })
    t.strictSame(session, { statement: '450ms', idle: '5s' }, 'the server enforces them on the session')
  }
})

if (!EMBEDDED) {
  t.test('a statement the server runs past statement_timeout is cancelled there: 503 within DATABASE_TIMEOUT_MS, and the connection stays in the pool', async (t) => {
    const pool = await app.services.store.pool()
    const removed: unknown[] = []
    const onRemove = (client: unknown): void => { removed.push(client) }
    pool.on('remove', onRemove)
    t.teardown(() => { pool.off('remove', onRemove) })

    const { error, ms } = await failure(async () => await app.orm.em.fork().execute('select pg_sleep(30)'))
    t.match(error, { code: '57014' }, 'cancelled by the server (57014), not abandoned by the client')
    t.ok(isDatabaseUnavailable(error), 'answered as database unavailable')
    t.ok(ms < BOUND_MS, `after ${Math.round(ms)} ms`)
    t.strictSame(removed, [], 'the connection was healthy and went back to the pool')
  })

  t.test('a write blocked by the locks of a connection cut off mid-transaction answers 503 within the bound, and succeeds once idle_in_transaction_session_timeout has ended that transaction', async (t) => {
    // Another replica, as Tessera connects, partitioned away while it held a lock on the token.
    const elsewhere = await startProxy({ host: target.hostname, port: Number(target.port) })
    const other = new pg.Client({ connectionString: elsewhere.url(targetUrl), ...serverTimeouts(TIMEOUT_MS) })
    other.on('error', () => {})
    t.teardown(async () => {
      await elsewhere.close()
      await other.end().catch(() => {})
    })
    const victim = await revocable()
    await other.connect()
    await other.query('begin')
    await other.query('select id from access_tokens where id = $1 for update', [victim.id])
    elsewhere.blackhole()
    const cutAt = performance.now()

    const revoke = async (): Promise<LightMyRequestResponse> =>
      await app.inject({ method: 'DELETE', url: `/api/v1/users/alice/tokens/${victim.id}`, headers: { authorization: bearer(owner.token) } })
    const { result, ms } = await timed(revoke)
    assertProblem(t, result, 503, 'TESSERA_DATABASE_UNAVAILABLE')
    t.ok(ms < BOUND_MS, `the blocked revoke answered in ${Math.round(ms)} ms (statement_timeout)`)

    const { idle_in_transaction_session_timeout: idle } = serverTimeouts(TIMEOUT_MS)
    t.ok(await eventually(async () => (await revoke()).statusCode === 204, idle + 2 * BOUND_MS), 'the revoke goes through once the server ended the stranded transaction')
    const waited = performance.now() - cutAt
    t.ok(waited >= idle - 100, `not before idle_in_transaction_session_timeout (${Math.round(waited)} ms after the cut)`)
    t.ok(waited < idle + 2 * BOUND_MS, `nor long after it (${idle} ms)`)
  })
}
