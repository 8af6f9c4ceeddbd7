import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { Event } from '../../src/entities/webhook.js'
import { parseNoticeDays } from '../../src/services/expiry-notices.js'
import { basic, buildWith, createTestDatabase, form, seedApplication, seedToken, seedUser } from '../helper.js'

/*
 * token.expiring once per threshold (TOKEN_EXPIRY_NOTICE_DAYS, 30,7,1) and token.expired once,
 * for personal tokens, surviving restarts without duplicates. Time is moved by rewriting the
 * tokens' created_at/expires_at in the database; the job runs as the timer would run it.
 */

t.test('TOKEN_EXPIRY_NOTICE_DAYS parses to distinct positive days, largest first', async (t) => {
  t.strictSame(parseNoticeDays('30,7,1'), [30, 7, 1])
  t.strictSame(parseNoticeDays(' 1, 30 ,7,7, 0'), [30, 7, 1])
  t.strictSame(parseNoticeDays(''), [])
})

const db = await createTestDatabase()
t.teardown(async () => { await db.close() })
const { app } = await buildWith(t, {}, { db })
await seedUser(app, 'alice')

async function setTimes (id: string, createdDaysAgo: number, expiresInDays: number): Promise<void> {
  await app.orm.em.getConnection().execute(
    'update access_tokens set created_at = now() - make_interval(secs => ?), expires_at = now() + make_interval(secs => ?) where id = ?',
    [createdDaysAgo * 86400, expiresInDays * 86400, id], 'run')
}

async function notices (instance: FastifyInstance = app): Promise<Array<{ type: string, token: string, days: number }>> {
  return (await instance.services.expiryNotices.run()).map((notice) => ({ type: notice.type, token: notice.tokenName, days: notice.days }))
}

t.test('each threshold once, then the expiry; the events carry what a receiver needs', async (t) => {
  const { id } = await seedToken(app, 'alice', { name: 'ci', scopes: ['read:tokens'] })
  await setTimes(id, 100, 40)
  t.strictSame(await notices(), [], '40 days left: nothing yet')
  await setTimes(id, 100, 29.5)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'ci', days: 30 }])
  t.strictSame(await notices(), [], 'not twice')
  await setTimes(id, 100, 6)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'ci', days: 7 }])
  await setTimes(id, 100, 0.5)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'ci', days: 1 }])
  await setTimes(id, 100, -0.01)
  t.strictSame(await notices(), [{ type: 'token.expired', token: 'ci', days: 0 }])
  t.strictSame(await notices(), [], 'the expiry once')

  const events = await app.orm.em.fork().find(Event, { type: { $in: ['token.expiring', 'token.expired'] } }, { orderBy: { createdAt: 'asc' } })
  t.equal(events.length, 4)
  t.match(events[0]!.data, { token: { id, name: 'ci' }, owner: 'alice', days: 30 })
  t.ok(typeof events[0]!.data.expires_at === 'string')
})

t.test('missed thresholds are not all sent at once: only the nearest', async (t) => {
  const { id } = await seedToken(app, 'alice', { name: 'late', scopes: ['read:tokens'] })
  await setTimes(id, 100, 3)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'late', days: 7 }], 'the 7-day notice (the 30-day one is moot now)')
})

t.test('a threshold the token was within from its creation is skipped', async (t) => {
  const { id } = await seedToken(app, 'alice', { name: 'short', scopes: ['read:tokens'] })
  await setTimes(id, 0, 5)
  t.strictSame(await notices(), [], 'a 5-day token is not told it expires within 7 or 30 days')
  await setTimes(id, 4.5, 0.5)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'short', days: 1 }])
})

t.test('no notice for a revoked token, a suspended owner\'s token, or a client_credentials token', async (t) => {
  const revoked = await seedToken(app, 'alice', { name: 'revoked', scopes: ['read:tokens'] })
  await setTimes(revoked.id, 100, 2)
  await app.orm.em.getConnection().execute('update access_tokens set revoked_at = now() where id = ?', [revoked.id], 'run')
  await seedUser(app, 'suspended')
  const held = await seedToken(app, 'suspended', { name: 'held', scopes: ['read:tokens'] })
  await setTimes(held.id, 100, 2)
  await app.orm.em.getConnection().execute('update users set suspended_at = now() where username = ?', ['suspended'], 'run')
  const client = await seedApplication(app, ['read:tokens'])
  const issued = form({ grant_type: 'client_credentials' })
  const res = await app.inject({ method: 'POST', url: '/oauth/token', payload: issued.payload, headers: { ...issued.headers, authorization: basic(client.clientId, client.clientSecret) } })
  t.equal(res.statusCode, 200)
  await app.orm.em.getConnection().execute('update access_tokens set expires_at = now() - interval \'1 minute\' where user_id is null', [], 'run')
  t.strictSame(await notices(), [])
})

t.test('a restart (another instance on the same database) sends nothing again', async (t) => {
  const { id } = await seedToken(app, 'alice', { name: 'restart', scopes: ['read:tokens'] })
  await setTimes(id, 100, 20)
  t.strictSame(await notices(), [{ type: 'token.expiring', token: 'restart', days: 30 }])
  if (db.embedded) {
    // The embedded database admits one process: the same instance stands for the restarted one.
    t.strictSame(await notices(), [])
    return
  }
  const { app: restarted } = await buildWith(t, {}, { db })
  t.strictSame(await notices(restarted), [], 'the new instance finds the notice recorded on the token')
})
