import { performance } from 'node:perf_hooks'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { basic, bearer, build, buildWith, createTestDatabase, form, introspection, seedApplication, seedToken, seedUser } from '../helper.js'
import { startProxy, type ProxyMode } from '../proxy.js'

/*
 * Fail closed (issue 6): with PostgreSQL unreachable, cached answers keep coming, a cache miss is
 * a quick 503 (never `active: true`, never a hang past DATABASE_TIMEOUT_MS), /readyz says degraded (and stays ready: see READINESS_MODE),
 * and everything recovers by itself when the database is back.
 *
 * The app reaches its database only through a TCP proxy this test controls (test/proxy.ts):
 * `down` (connections destroyed, new ones reset) and `blackhole` (a partition: sockets open,
 * nothing gets through). Both databases, explicitly:
 *
 * - With DATABASE_URL: a fresh database on that server behind the proxy, and the app configured
 *   as in production with a server (DATABASE_URL = the proxy): a pool of DATABASE_POOL_MAX
 *   connections plus the invalidation listener, which loses its connection in the outage too.
 * - Without it: an embedded PGlite behind the proxy, and the app in the embedded configuration
 *   (DATABASE_URL unset: one connection, no listener, `invalidation: local`), as Tessera runs on
 *   PGlite. Not the server configuration pointed at PGlite: PGlite's socket connections share
 *   one database session, so what one connection prepares collides with the next one's — an
 *   artefact no real deployment has.
 */
t.setTimeout(180_000)

const EMBEDDED = (process.env.DATABASE_URL ?? '') === ''
const TIMEOUT_MS = 500
/** DATABASE_TIMEOUT_MS plus a margin for a loaded machine: the bound the issue asks for. */
const BOUND_MS = 2000
const ENV = {
  DATABASE_TIMEOUT_MS: String(TIMEOUT_MS),
  CACHE_TTL: '60',
  // The listener loses its connection too and cuts cached lifetimes to CACHE_DEGRADED_TTL (tested
  // on its own below); long enough here for the cached answers to outlast each outage.
  CACHE_DEGRADED_TTL: '60',
  CLIENT_CREDENTIAL_CACHE_TTL: '60',
  DATABASE_POOL_MAX: '2'
}

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
// Teardowns run last-in first-out: the apps close (through a working proxy) before it goes.
t.teardown(async () => { await proxy.close() })

/** Builds an app whose database is behind the proxy; closed when `t` ends. */
async function buildBehindProxy (t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const { app } = await buildWith(t, { ...ENV, ...env }, { db: { url: proxy.url(targetUrl), embedded: EMBEDDED, close: async () => {} } })
  return app
}

/** What /readyz reports for the invalidation channel while it works. */
const LISTENING = EMBEDDED ? 'local' : 'listening'

const app = await buildBehindProxy(t)
const resourceServer = await seedApplication(app, ['introspect'])
const resourceAuth = basic(resourceServer.clientId, resourceServer.clientSecret)
await seedUser(app, 'alice')

type Check = (token: string) => Promise<LightMyRequestResponse>

function checksOn (on: FastifyInstance): Record<'introspect' | 'token/info' | 'verify', Check> {
  return {
    async introspect (token) {
      return await introspection(on, token, resourceAuth)
    },
    async 'token/info' (token) {
      return await on.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
    },
    async verify (token) {
      return await on.inject({ method: 'GET', url: '/auth/verify', headers: { authorization: bearer(token) } })
    }
  }
}
const checks = checksOn(app)

async function timed<T> (run: () => Promise<T>): Promise<{ result: T, ms: number }> {
  const start = performance.now()
  const result = await run()
  return { result, ms: performance.now() - start }
}

async function readiness (on: FastifyInstance = app): Promise<{ status: number, body: { status: string, checks: { database: string, migrations: string, invalidation: string } } }> {
  const res = await on.inject({ method: 'GET', url: '/readyz' })
  return { status: res.statusCode, body: res.json() }
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

/**
 * Setup, not under test: retried, so one outage's aftermath (the embedded server briefly refusing
 * a new connection while the old one closes) does not hide the next test's assertions.
 */
async function retried<T> (run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (error) {
      if (attempt === 20) throw error
      await sleep(100)
    }
  }
}

/** A fail-closed answer: 503 with the OAuth error, and nothing that could pass for an active token. */
function assertUnavailable (t: Test, res: LightMyRequestResponse, what: string, ms: number): void {
  t.equal(res.statusCode, 503, `${what}: 503`)
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.equal(body.error, 'temporarily_unavailable', `${what}: temporarily_unavailable`)
  t.equal(res.headers['retry-after'], '1', `${what}: Retry-After 1 (the replicas check the database every second)`)
  t.notOk('active' in body, `${what}: no active field at all`)
  t.ok(ms < BOUND_MS, `${what}: answered in ${Math.round(ms)} ms (DATABASE_TIMEOUT_MS is ${TIMEOUT_MS}, the bound ${BOUND_MS})`)
}

async function outage (t: Test, mode: Exclude<ProxyMode, 'up'>): Promise<void> {
  // Whatever happens below, the proxy comes back (the app must be able to close).
  t.teardown(() => { proxy.restore() })

  const hit = await retried(async () => await seedToken(app, 'alice', { name: `hit-${mode}`, scopes: ['read:repository'] }))
  const miss = await retried(async () => await seedToken(app, 'alice', { name: `miss-${mode}`, scopes: ['read:repository'] }))
  t.strictSame(await readiness(), { status: 200, body: { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: LISTENING } } }, 'ready before')
  for (const [name, check] of Object.entries(checks)) t.equal((await check(hit.token)).statusCode, 200, `${name}: the hit token is valid (and now cached)`)
  t.equal(app.services.cache.get(app.services.resolver.cacheKey(miss.token)), undefined, 'the miss token is not cached')

  if (mode === 'down') proxy.down()
  else proxy.blackhole()

  await t.test('cache hits keep answering', async (t) => {
    const introspected = await checks.introspect(hit.token)
    t.equal(introspected.statusCode, 200, 'introspection by a client whose credentials are cached')
    t.match(introspected.json(), { active: true, username: 'alice' })
    t.equal((await checks['token/info'](hit.token)).statusCode, 200, 'token/info')
    t.equal((await checks.verify(hit.token)).statusCode, 200, 'verify')
  })

  await t.test('a miss answers 503 quickly on every path, never active', async (t) => {
    for (const [name, check] of Object.entries(checks)) {
      const { result, ms } = await timed(async () => await check(miss.token))
      assertUnavailable(t, result, name, ms)
    }
  })

  await t.test('a client whose credentials are not cached gets 503 (not 401: nothing says they are wrong)', async (t) => {
    const stranger = basic('never-seen-client', 'some-secret-value')
    const { result, ms } = await timed(async () => await introspection(app, hit.token, stranger))
    assertUnavailable(t, result, 'unknown client', ms)
  })

  await t.test('concurrent misses each answer 503 within the bound (more requests than pooled connections)', async (t) => {
    const answers = await Promise.all(Array.from({ length: 6 }, async () => await timed(async () => await checks.introspect(miss.token))))
    answers.forEach(({ result, ms }, n) => { assertUnavailable(t, result, `concurrent miss ${n + 1}`, ms) })
  })

  await t.test('/readyz says degraded and stays ready (READINESS_MODE=fleet: nobody to tell it the outage is its alone), /healthz green', async (t) => {
    const { result, ms } = await timed(async () => await readiness())
    t.equal(result.status, 200)
    t.match(result.body, { status: 'degraded', checks: { database: 'unreachable', fleet: 'unknown' } })
    t.ok(ms < BOUND_MS, `answered in ${Math.round(ms)} ms`)
    t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  })

  if (EMBEDDED) {
    await t.test('no listener on the embedded database: nothing to degrade, hits still answer', async (t) => {
      t.equal(app.services.listener, null)
      t.equal((await readiness()).body.checks.invalidation, 'local')
      t.equal(app.services.freshness.degraded, false)
      t.match((await checks.introspect(hit.token)).json(), { active: true })
      const { result, ms } = await timed(async () => await checks.verify(miss.token))
      assertUnavailable(t, result, 'a miss, later in the outage', ms)
    })
  } else {
    await t.test('the listener notices and reports reconnecting; hits still answer', async (t) => {
      // In a blackhole only its next probe (every second, DATABASE_TIMEOUT_MS each) can tell.
      t.ok(await eventually(async () => (await readiness()).body.checks.invalidation === 'reconnecting', 15_000), 'reconnecting')
      t.equal(app.services.freshness.degraded, true)
      t.match((await checks.introspect(hit.token)).json(), { active: true }, 'within CACHE_DEGRADED_TTL the hit still answers')
      const { result, ms } = await timed(async () => await checks.verify(miss.token))
      assertUnavailable(t, result, 'a miss, later in the outage', ms)
    })
  }

  proxy.restore()

  await t.test('everything recovers by itself', async (t) => {
    const start = performance.now()
    t.ok(await eventually(async () => (await readiness()).body.status === 'ok', 15_000), 'readyz is ok again')
    t.ok(await eventually(async () => (await readiness()).body.checks.invalidation === LISTENING, 15_000), `invalidation: ${LISTENING}`)
    t.comment(`recovered ${Math.round(performance.now() - start)} ms after the restore`)
    t.equal(app.services.freshness.degraded, false)
    for (const [name, check] of Object.entries(checks)) {
      const res = await check(miss.token)
      t.equal(res.statusCode, 200, `${name}: the former miss is answered from the database`)
    }
    t.match((await checks.introspect(miss.token)).json(), { active: true, username: 'alice' })
    t.match((await checks.introspect(hit.token)).json(), { active: true, username: 'alice' })
    const revoke = form({ token: hit.token })
    t.equal((await app.inject({ method: 'POST', url: '/oauth/revoke', payload: revoke.payload, headers: revoke.headers })).statusCode, 200, 'writes work again')
    t.strictSame((await checks.introspect(hit.token)).json(), { active: false })
  })
}

t.test('database down (connections destroyed, new ones refused)', async (t) => { await outage(t, 'down') })

t.test('database blackholed (a partition: nothing answers, nothing fails)', async (t) => { await outage(t, 'blackhole') })

// Only a server run has a listener whose loss degrades the caches.
if (!EMBEDDED) {
  t.test('a cached answer is not trusted past CACHE_DEGRADED_TTL once the listener is down: it fails closed', async (t) => {
    const short = await buildBehindProxy(t, { CACHE_DEGRADED_TTL: '1' })
    const shortChecks = checksOn(short)
    const { token } = await seedToken(short, 'alice', { name: 'degraded', scopes: ['read:repository'] })
    t.teardown(() => { proxy.restore() })
    t.match((await shortChecks.introspect(token)).json(), { active: true }, 'cached while up')

    const downAt = performance.now()
    proxy.down()
    t.ok(await eventually(async () => (await readiness(short)).body.checks.invalidation === 'reconnecting', 15_000), 'the listener lost its connection')
    // Still cached for the rest of the second, then a miss: 503, not a stale `active: true`.
    t.ok(await eventually(async () => (await shortChecks.introspect(token)).statusCode === 503, 10_000), 'the cached answer expires')
    t.ok(performance.now() - downAt >= 995, 'not before CACHE_DEGRADED_TTL (the listener degraded the cache after the outage began)')
    const { result, ms } = await timed(async () => await shortChecks.introspect(token))
    assertUnavailable(t, result, 'the former hit', ms)

    proxy.restore()
    t.ok(await eventually(async () => (await readiness(short)).body.checks.invalidation === 'listening', 15_000), 'back')
    t.match((await shortChecks.introspect(token)).json(), { active: true })
  })
}

t.test('cache misses still work once the pool has replaced its connection (own database, as the run configures it)', async (t) => {
  // pg-pool replaces a connection after 30 s idle (idleTimeoutMillis) and after any failed
  // statement; closing MikroORM replaces the whole pool. The hot path must not depend on
  // anything the previous connection left behind. On the embedded database this is the
  // production configuration: one connection, no listener.
  const own = await build(t, { DATABASE_TIMEOUT_MS: String(TIMEOUT_MS) })
  const caller = await seedApplication(own, ['introspect'])
  await seedUser(own, 'bob')
  const tokens = [await seedToken(own, 'bob'), await seedToken(own, 'bob'), await seedToken(own, 'bob')]
  const status = async (token: string): Promise<number> => (await introspection(own, token, basic(caller.clientId, caller.clientSecret))).statusCode
  t.equal(await status(tokens[0]!.token), 200, 'a miss, looked up on the first connection')
  await own.orm.close()
  // The embedded server may briefly refuse the new connection while the old one closes: poll.
  t.ok(await eventually(async () => await status(tokens[1]!.token) === 200, 10_000), 'a miss on the new connection')
  t.equal(await status(tokens[2]!.token), 200, 'and the next one')
})
