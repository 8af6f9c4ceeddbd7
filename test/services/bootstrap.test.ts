import argon2 from 'argon2'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { User } from '../../src/entities/user.js'
import { findInternalApplication } from '../../src/services/applications.js'
import { bootstrap } from '../../src/services/bootstrap.js'
import { isWellFormedToken } from '../../src/services/token-format.js'
import { bearer, build, seedUser } from '../helper.js'

async function passwordHashOf (app: FastifyInstance, username: string): Promise<string> {
  const user = await app.orm.em.fork().findOneOrFail(User, { username }, { populate: ['passwordHash'] })
  return user.passwordHash ?? ''
}

async function count (app: FastifyInstance, table: string): Promise<number> {
  const rows = await app.orm.em.getConnection().execute<Array<{ count: string | number }>>(`select count(*) as count from ${table}`)
  return Number(rows[0]?.count)
}

t.test('a first start creates the admin and returns its credentials once; a second start does nothing', async (t) => {
  const app = await build(t, {}, { internalApp: false })

  const first = await bootstrap(app.services)
  t.ok(first !== null)
  if (first === null) return
  t.equal(first.username, 'admin')
  t.match(first.generatedPassword, /^[0-9A-Za-z]{24}$/)
  t.equal(first.token !== null && isWellFormedToken(first.token, 'tsr'), true)

  t.equal(await bootstrap(app.services), null)
  t.equal(await count(app, 'users'), 1)
  t.equal(await count(app, 'access_tokens'), 1)
  t.not(await findInternalApplication(app.orm.em.fork()), null, 'the internal application was ensured')

  t.test('the admin is an administrator whose password verifies with argon2id', async (t) => {
    const admin = await app.orm.em.fork().findOneOrFail(User, { username: 'admin' })
    t.equal(admin.admin, true)
    t.equal(admin.suspendedAt, null)
    const hash = await passwordHashOf(app, 'admin')
    t.match(hash, /^\$argon2id\$/)
    t.equal(await argon2.verify(hash, first.generatedPassword ?? ''), true)
    t.equal(await argon2.verify(hash, 'not the password'), false)
  })

  t.test('the admin token resolves as active with the admin scope', async (t) => {
    const admin = await app.orm.em.fork().findOneOrFail(User, { username: 'admin' })
    t.match(await app.services.resolver.resolve(first.token ?? ''), {
      scopes: ['admin', 'introspect', 'write:tokens'],
      effectiveScope: 'admin introspect write:tokens read:tokens',
      userId: admin.id,
      username: 'admin',
      clientId: 'internal'
    })
    const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(first.token ?? '') } })
    t.equal(info.statusCode, 200)
    t.match(info.json(), { resource_owner_id: admin.id, scope: ['admin', 'introspect', 'write:tokens', 'read:tokens'], application: { uid: 'internal' } })
  })

  t.test('the bootstrap is audited and its secrets are stored nowhere', async (t) => {
    const events = await app.orm.em.getConnection().execute<Array<{ action: string, actor: string, target: string }>>('select action, actor, target from audit_events order by id')
    t.strictSame(events, [
      { action: 'user.created', actor: 'system', target: 'admin' },
      { action: 'token.created', actor: 'system', target: 'bootstrap' }
    ])
    const connection = app.orm.em.getConnection()
    const dump = JSON.stringify([
      await connection.execute('select * from users'),
      await connection.execute('select * from access_tokens'),
      await connection.execute('select * from audit_events')
    ])
    t.notOk(dump.includes(first.token ?? ''), 'no plaintext token')
    t.notOk(dump.includes(first.generatedPassword ?? ''), 'no plaintext password')
  })
})

t.test('with BOOTSTRAP_ADMIN_PASSWORD, the admin gets that password and no token is generated', async (t) => {
  // Replicas starting together: the advisory lock lets exactly one of them bootstrap. On a real
  // server, DATABASE_URL gives the pool several connections, so the two calls really overlap.
  const app = await build(t, { BOOTSTRAP_ADMIN_USERNAME: 'root', BOOTSTRAP_ADMIN_PASSWORD: 'a configured password', DATABASE_URL: process.env.DATABASE_URL ?? '' })
  const results = await Promise.all([bootstrap(app.services), bootstrap(app.services)])
  t.strictSame(results.filter((result) => result !== null), [{ username: 'root', generatedPassword: null, token: null }])
  t.equal(await count(app, 'users'), 1)
  t.equal(await count(app, 'access_tokens'), 0)
  t.equal(await argon2.verify(await passwordHashOf(app, 'root'), 'a configured password'), true)
  t.equal((await app.orm.em.fork().findOneOrFail(User, { username: 'root' })).admin, true)
})

t.test('a database that already has a user is not bootstrapped', async (t) => {
  const app = await build(t)
  await seedUser(app, 'existing')
  t.equal(await bootstrap(app.services), null)
  t.equal(await count(app, 'users'), 1)
  t.equal(await count(app, 'access_tokens'), 0)
})
