import t from 'tap'
import { sweepDeadTokens } from '../../src/services/token-sweeper.js'
import { build, seedToken, seedUser } from '../helper.js'

const DAY = 86400

const app = await build(t)
await seedUser(app, 'alice')
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)

async function remainingIds (): Promise<string[]> {
  return (await sql<{ id: string }>('select id from access_tokens order by id')).map((row) => row.id)
}

/** A token that expired, or was revoked, `secondsAgo` seconds ago. */
async function deadToken (how: 'expired' | 'revoked', secondsAgo: number): Promise<string> {
  const { id } = await seedToken(app, 'alice', { name: `${how}-${secondsAgo}-${Math.random().toString(36).slice(2)}`, expires_in: 3600 })
  const column = how === 'expired' ? 'expires_at' : 'revoked_at'
  await sql(`update access_tokens set ${column} = now() - make_interval(secs => ?) where id = ?`, [secondsAgo, id])
  return id
}

t.test('deletes tokens dead for longer than the retention and keeps live and recently dead ones', async (t) => {
  const live = (await seedToken(app, 'alice', { name: 'live', expires_in: 3600 })).id
  const liveLong = (await seedToken(app, 'alice', { name: 'live-long', expires_in: 30 * DAY })).id
  const expiredLongAgo = await deadToken('expired', 2 * DAY)
  const revokedLongAgo = await deadToken('revoked', 2 * DAY)
  const expiredRecently = await deadToken('expired', 60)
  const revokedRecently = await deadToken('revoked', 60)
  const justInside = await deadToken('expired', DAY - 60)

  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY }), 2, 'returns how many it deleted')
  t.strictSame(await remainingIds(), [live, liveLong, expiredRecently, revokedRecently, justInside].sort())
  t.notOk((await remainingIds()).includes(expiredLongAgo))
  t.notOk((await remainingIds()).includes(revokedLongAgo))

  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY }), 0, 'a second sweep finds nothing')
  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: 30 }), 3, 'a shorter retention takes the recently dead too')
  t.strictSame(await remainingIds(), [live, liveLong].sort())
  await sql('delete from access_tokens')
})

t.test('a revoked token whose expiry is still ahead is swept by its revocation time', async (t) => {
  const { id } = await seedToken(app, 'alice', { name: 'revoked-future', expires_in: 30 * DAY })
  await sql('update access_tokens set revoked_at = now() - interval \'2 days\' where id = ?', [id])
  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY }), 1)
  t.strictSame(await remainingIds(), [])
})

t.test('works through many dead tokens in batches', async (t) => {
  t.test('ten dead tokens with a batch size of three: four batches, all ten gone', async (t) => {
    const live = (await seedToken(app, 'alice', { name: 'survivor' })).id
    for (let i = 0; i < 10; i++) await deadToken(i % 2 === 0 ? 'expired' : 'revoked', 2 * DAY + i)
    t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY, batchSize: 3 }), 10)
    t.strictSame(await remainingIds(), [live])
    await sql('delete from access_tokens')
  })

  t.test('a number of dead tokens that is a multiple of the batch size', async (t) => {
    for (let i = 0; i < 9; i++) await deadToken('expired', 2 * DAY)
    t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY, batchSize: 3 }), 9)
    t.strictSame(await remainingIds(), [])
  })

  t.test('a batch size of one', async (t) => {
    for (let i = 0; i < 4; i++) await deadToken('revoked', 2 * DAY)
    t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY, batchSize: 1 }), 4)
    t.strictSame(await remainingIds(), [])
  })
})

t.test('a swept token is no longer known at all, not merely inactive', async (t) => {
  const dead = await seedToken(app, 'alice', { name: 'swept', expires_in: 3600 })
  await sql('update access_tokens set revoked_at = now() - interval \'2 days\' where id = ?', [dead.id])
  const { resolver, cache, store } = app.services
  t.match(await store.token(resolver.digest(dead.token)), { id: dead.id, revoked: true }, 'before: a revoked record')
  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: DAY }), 1)
  cache.clear()
  t.equal(await store.token(resolver.digest(dead.token)), null, 'after: unknown')
  t.strictSame(await remainingIds(), [])
})

t.test('with nothing to sweep it returns 0', async (t) => {
  await sql('delete from access_tokens')
  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: 0 }), 0)
  const { id } = await seedToken(app, 'alice', { name: 'never-dies' })
  t.equal(await sweepDeadTokens(app.orm.em, { retentionSeconds: 0 }), 0, 'a live token with retention 0 stays')
  t.strictSame(await remainingIds(), [id])
})
