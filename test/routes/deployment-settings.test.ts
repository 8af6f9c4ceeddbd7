import Fastify from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { serverOptions } from '../../src/options.js'
import { bearer, buildWith, createTestDatabase, seedToken, seedUser, TEST_ENV } from '../helper.js'

// The settings of a deployment behind a migration Job and a connection pooler (issue 14):
// MIGRATE_ON_START, DATABASE_LISTEN_URL, DATABASE_PREPARED_STATEMENTS.

t.test('MIGRATE_ON_START=false: a replica refuses to start while a migration is pending, and starts once the Job applied them', async (t) => {
  const db = await createTestDatabase()
  t.teardown(async () => { await db.close() })
  const config = loadConfig({ ...TEST_ENV, ...(db.embedded ? {} : { DATABASE_URL: db.url }), MIGRATE_ON_START: 'false' })
  t.equal(config.MIGRATE_ON_START, false)
  const early = Fastify(serverOptions(config))
  await t.rejects(async () => {
    await early.register(app, { config, databaseUrl: db.url, migrate: 'require' })
    await early.ready()
  }, /database migration\(s\) pending \(Migration\d+.*\) and MIGRATE_ON_START=false: apply them with `tessera migrate`/)
  await early.close().catch(() => {})

  // The embedded database admits one connection, and a new one right after a refused start is
  // not reliably accepted (the old one may not be gone yet): the rest needs a server.
  if (db.embedded) return

  // The migration Job's part (what `tessera migrate` does).
  const migrator = Fastify(serverOptions(config))
  await migrator.register(app, { config, databaseUrl: db.url, migrate: true })
  await migrator.ready()
  await migrator.close()

  const replica = Fastify(serverOptions(config))
  t.teardown(async () => { await replica.close() })
  await replica.register(app, { config, databaseUrl: db.url, migrate: 'require' })
  await replica.ready()
  const ready = await replica.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.ok(replica.services.keys.publishedKeys().keys.length > 0, 'it loaded (or created) a signing key as a normal start does')
})

t.test('DATABASE_LISTEN_URL: the invalidation listener connects there, the pool to DATABASE_URL', async (t) => {
  const server = process.env.DATABASE_URL ?? ''
  if (server === '') {
    // The embedded database is one process: there is nothing to listen for, and the setting is refused.
    t.throws(() => loadConfig({ ...TEST_ENV, DATABASE_LISTEN_URL: 'postgres://postgres@127.0.0.1:5432/test' }), /DATABASE_LISTEN_URL needs DATABASE_URL/)
    return
  }
  // A listen URL nothing answers at: the pool works, the listener does not.
  const db = await createTestDatabase()
  const { app: replica } = await buildWith(t, { DATABASE_LISTEN_URL: 'postgres://postgres@127.0.0.1:1/none' }, { db })
  const res = await replica.inject({ method: 'GET', url: '/readyz' })
  t.match(res.json(), { status: 'ok', checks: { database: 'ok', invalidation: 'reconnecting' } })
})

t.test('DATABASE_PREPARED_STATEMENTS=false: the hot path still answers a cache miss from the database', async (t) => {
  const { app: replica } = await buildWith(t, { DATABASE_PREPARED_STATEMENTS: 'false', CACHE_MAX_ENTRIES: '0' })
  await seedUser(replica, 'erin')
  const { token } = await seedToken(replica, 'erin', { scopes: ['read:repository'] })
  for (let i = 0; i < 3; i++) {
    const res = await replica.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
    t.equal(res.statusCode, 200)
  }
})
