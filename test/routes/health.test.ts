import Fastify from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { serverOptions } from '../../src/options.js'
import { buildWith, createTestDatabase, TEST_ENV } from '../helper.js'

/** On the embedded database there is no other replica to listen to; on a server the listener is up. */
const INVALIDATION = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '' ? 'local' : 'listening'

t.test('health endpoints follow the database', async (t) => {
  const db = await createTestDatabase()
  const { app } = await buildWith(t, {}, { db })

  t.test('/healthz answers ok while the process is up', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/healthz' })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.strictSame(res.json(), { status: 'ok' })
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
    for (let attempt = 0; attempt < 20 && res.statusCode !== 200; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      res = await app.inject({ method: 'GET', url: '/readyz' })
    }
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: INVALIDATION } })
  })

  // Closing MikroORM is not an outage: MikroORM 7 reconnects lazily on the next query. The
  // database itself goes away here (the embedded server stops; the server's database is dropped).
  t.test('/readyz goes red when the database is gone, /healthz stays green', async (t) => {
    await db.close()
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(res.statusCode, 503)
    // The listener (on a server) may or may not have noticed yet: the database check is what matters.
    t.match(res.json(), { status: 'unavailable', checks: { database: 'unreachable', migrations: 'unknown' } })
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
