import Fastify from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { serverOptions } from '../../src/options.js'
import { buildWith, createTestDatabase, TEST_ENV, testRedis } from '../helper.js'

// Seven app instances, each on a database of its own, and a wait for a fleet mark to age.
t.setTimeout(240_000)

/** On the embedded database there is no other replica to listen to; on a server the listener is up. */
const INVALIDATION = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '' ? 'local' : 'listening'

t.test('health endpoints follow the database', async (t) => {
  const db = await createTestDatabase()
  const { app } = await buildWith(t, {}, { db })

  t.test('/healthz and /livez answer ok while the process is up', async (t) => {
    for (const url of ['/healthz', '/livez']) {
      const res = await app.inject({ method: 'GET', url })
      t.equal(res.statusCode, 200)
      t.match(res.headers['content-type'], /^application\/json/)
      t.strictSame(res.json(), { status: 'ok' })
    }
  })

  t.test('/readyz is green with the database reachable and migrations applied', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: INVALIDATION } })
  })

  t.test('/readyz recovers by itself after the ORM connection is closed', async (t) => {
    await app.orm.close()
    let res = await app.inject({ method: 'GET', url: '/readyz' })
    // The embedded server accepts one connection and may not have seen the old one go yet.
    for (let attempt = 0; attempt < 20 && res.json().status !== 'ok'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      res = await app.inject({ method: 'GET', url: '/readyz' })
    }
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: INVALIDATION } })
  })

  // Closing MikroORM is not an outage: MikroORM 7 reconnects lazily on the next query. The
  // database itself goes away here (the embedded server stops; the server's database is dropped).
  t.test('the database gone: /readyz stays ready but degraded (READINESS_MODE=fleet, no Redis to ask the others), /healthz green', async (t) => {
    await db.close()
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(res.statusCode, 200)
    // The listener (on a server) may or may not have noticed yet: the database check is what matters.
    t.match(res.json(), { status: 'degraded', checks: { database: 'unreachable', migrations: 'unknown', fleet: 'unknown' } })
    const live = await app.inject({ method: 'GET', url: '/healthz' })
    t.equal(live.statusCode, 200)
    t.strictSame(live.json(), { status: 'ok' })
  })
})

t.test('/readyz is red until the migrations are applied', async (t) => {
  const db = await createTestDatabase()
  const config = loadConfig({ ...TEST_ENV, ...(db.embedded ? {} : { DATABASE_URL: db.url }) })
  const server = Fastify(serverOptions(config))
  t.teardown(async () => {
    await server.close()
    await db.close()
  })
  await server.register(app, { config, databaseUrl: db.url, migrate: false })
  await server.ready()

  const pending = await server.inject({ method: 'GET', url: '/readyz' })
  t.equal(pending.statusCode, 503)
  t.strictSame(pending.json(), { status: 'unavailable', checks: { database: 'ok', migrations: 'pending', invalidation: INVALIDATION } })

  await server.orm.migrator.up()
  const ready = await server.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.strictSame(ready.json(), { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: INVALIDATION } })
})

t.test('READINESS_MODE=strict: /readyz goes red as soon as the database is gone', async (t) => {
  const db = await createTestDatabase()
  const { app } = await buildWith(t, { READINESS_MODE: 'strict' }, { db })
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  await db.close()
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { status: 'unavailable', checks: { database: 'unreachable' } })
  t.notOk('fleet' in res.json().checks, 'strict does not ask the fleet')
})

// A fleet (READINESS_MODE=fleet with REDIS_URL): two replicas, each with a database of its own
// here, so that one can lose its database while the other keeps it — a replica cut off alone.
t.test('in a fleet: a replica cut off alone leaves the balancer; an outage everyone sees keeps it in', async (t) => {
  const redis = testRedis()
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix, REDIS_TIMEOUT_MS: '1000' }
  const dbA = await createTestDatabase()
  const dbB = await createTestDatabase()
  const { app: a } = await buildWith(t, env, { db: dbA })
  const { app: b } = await buildWith(t, env, { db: dbB })
  t.equal((await a.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  await a.services.fleet?.beat()
  await b.services.fleet?.beat()

  await dbA.close()
  await a.services.fleet?.beat() // A's check fails: it lost the database now
  await b.services.fleet?.beat() // and B reached it afterwards
  const alone = await a.inject({ method: 'GET', url: '/readyz' })
  t.equal(alone.statusCode, 503, 'B reached the database after A lost it: A is the one cut off')
  t.match(alone.json(), { status: 'unavailable', checks: { database: 'unreachable', fleet: 'others-reach-database', rate_limits: 'shared' } })
  t.equal((await b.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'B serves on')

  await dbB.close()
  await b.services.fleet?.beat()
  // B's last word, said after A lost the database, ages past three seconds (its beats now fail and say nothing).
  const deadline = Date.now() + 10_000
  let everyone = await a.inject({ method: 'GET', url: '/readyz' })
  while (everyone.statusCode !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    everyone = await a.inject({ method: 'GET', url: '/readyz' })
  }
  t.equal(everyone.statusCode, 200, 'nobody reaches the database: A stays in the balancer')
  t.match(everyone.json(), { status: 'degraded', checks: { database: 'unreachable', fleet: 'none-reach-database' } })
  t.match((await b.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'degraded' })
})

t.test('in a fleet: an outage everyone sees keeps every replica in from its first moment', async (t) => {
  const redis = testRedis()
  const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix, REDIS_TIMEOUT_MS: '1000' }
  const dbC = await createTestDatabase()
  const dbD = await createTestDatabase()
  const { app: c } = await buildWith(t, env, { db: dbC })
  const { app: d } = await buildWith(t, env, { db: dbD })
  for (const replica of [c, d]) {
    t.equal((await replica.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
    await replica.services.fleet?.beat()
  }
  // Both marked a moment ago, then both lose the database: those marks say nothing about the
  // outage, so neither may conclude that the other still reaches it (the whole fleet would leave).
  await dbC.close()
  await dbD.close()
  for (const replica of [c, d]) await replica.services.fleet?.beat()
  for (const replica of [c, d]) {
    const res = await replica.inject({ method: 'GET', url: '/readyz' })
    t.equal(res.statusCode, 200, 'stays in the balancer at once')
    t.match(res.json(), { status: 'degraded', checks: { database: 'unreachable', fleet: 'none-reach-database' } })
  }
})
