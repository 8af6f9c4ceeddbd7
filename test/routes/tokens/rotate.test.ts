import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { AuditEvent } from '../../../src/entities/audit-event.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { isWellFormedToken } from '../../../src/services/token-format.js'
import { rotateToken } from '../../../src/services/tokens.js'
import { assertProblem, basic, bearer, build, introspect, seedApplication, seedToken, seedUser } from '../../helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const MAX_GRACE = 60

interface Created {
  id: string
  name: string
  token: string
  sha1: string
  token_last_eight: string
  scopes: string[]
  audience: string[] | null
  created_at: string
  expires_at: string | null
}

const app = await build(t, { TOKEN_ROTATION_MAX_GRACE: String(MAX_GRACE) })
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)
const resourceServer = await seedApplication(app, ['introspect'])
await seedUser(app, 'alice')
await seedUser(app, 'bob')
// It rotates alice's other tokens, so it must grant all they grant (a token may rotate another
// only if it could stand in for it): the repository scope too.
const manager = await seedToken(app, 'alice', { name: 'manager', scopes: ['read:tokens', 'write:tokens', 'read:repository'] })

const introspectAsServer = async (token: string): Promise<Record<string, unknown>> => await introspect(app, token, basic(resourceServer.clientId, resourceServer.clientSecret))

async function isActive (token: string): Promise<boolean> {
  return (await introspectAsServer(token)).active === true
}

async function rotate (id: string, payload?: unknown, as = manager.token): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: `/api/v1/tokens/${id}/rotate`,
    headers: { authorization: bearer(as) },
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
  })
}

async function view (id: string): Promise<Record<string, unknown>> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/tokens/${id}`, headers: { authorization: bearer(manager.token) } })
  if (res.statusCode !== 200) throw new Error(`GET /api/v1/tokens/${id} answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

async function countTokens (): Promise<number> {
  const [row] = await sql<{ n: number }>('select count(*)::int as n from access_tokens')
  return row?.n ?? -1
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

t.test('without a grace period the new token works and the old one is dead at once, even when cached', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'ci', scopes: ['read:repository', 'read:tokens'], audience: ['https://git.example', 'https://ci.example'], expires_in: 5000 })
  t.equal(await isActive(old.token), true, 'active, and now cached')
  const res = await rotate(old.id, {})
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  const created = res.json() as Created
  t.strictSame(Object.keys(created).sort(), ['audience', 'created_at', 'expires_at', 'id', 'name', 'scopes', 'sha1', 'token', 'token_last_eight'])
  t.match(created, {
    id: UUID,
    name: 'ci',
    scopes: ['read:repository', 'read:tokens'],
    audience: ['https://git.example', 'https://ci.example'],
    created_at: ISO_DATE,
    expires_at: ISO_DATE
  })
  t.not(created.id, old.id)
  t.ok(created.id > old.id, 'the new token is newer')
  t.ok(isWellFormedToken(created.token, 'tsr'))
  t.not(created.token, old.token)
  t.equal(created.sha1, created.token)
  t.equal(created.token_last_eight, created.token.slice(-8))
  t.equal(Date.parse(created.expires_at as string) - Date.parse(created.created_at), 5000_000, 'the same lifetime length')

  t.strictSame(await introspectAsServer(old.token), { active: false }, 'the old token is dead')
  t.match(await introspectAsServer(created.token), { active: true, scope: 'read:repository read:tokens', aud: ['https://git.example', 'https://ci.example'], username: 'alice' })
  const tokenInfo = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(old.token) } })
  t.equal(tokenInfo.statusCode, 401, 'token/info refuses the old token')

  t.match(await view(created.id), { id: created.id, name: 'ci', rotated_from: old.id, state: 'active', owner: { username: 'alice' }, application: { client_id: String } })
  t.match(await view(old.id), { state: 'revoked', revoked_at: ISO_DATE, rotated_from: null })
  const listing = await app.inject({ method: 'GET', url: '/api/v1/tokens?state=all', headers: { authorization: bearer(manager.token) } })
  const entries = listing.json() as Array<{ id: string, rotated_from: string | null }>
  t.equal(entries.find((entry) => entry.id === created.id)?.rotated_from, old.id, 'the review listing shows rotated_from')

  const [newRow] = await sql<{ application_id: string }>('select application_id from access_tokens where id = ?', [created.id])
  const [oldRow] = await sql<{ application_id: string }>('select application_id from access_tokens where id = ?', [old.id])
  t.equal(newRow?.application_id, oldRow?.application_id, 'the same application')

  const events = await app.orm.em.fork().find(AuditEvent, { action: 'token.rotated', targetId: created.id })
  t.equal(events.length, 1, 'a token.rotated audit event')
  t.match(events[0], { actor: 'alice', targetType: 'token', target: 'ci', details: { owner: 'alice', rotated_from: old.id, scopes: ['read:repository', 'read:tokens'] } })
})

t.test('with a grace period both tokens work until it ends, then only the new one', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'deploy', scopes: ['read:repository'] })
  t.equal(await isActive(old.token), true, 'active, and now cached')
  const rotatedAt = Date.now()
  const res = await rotate(old.id, { grace_period: 2 })
  t.equal(res.statusCode, 201)
  const created = res.json() as Created
  t.equal(await isActive(old.token), true, 'the old token still works during the grace period')
  t.equal(await isActive(created.token), true, 'the new token works')
  const during = await view(old.id)
  t.match(during, { state: 'active', revoked_at: null })
  const graceEnd = Date.parse(during.expires_at as string)
  t.ok(graceEnd >= rotatedAt + 2000 && graceEnd <= Date.now() + 2000, 'the old token now expires when the grace period ends')

  await sleep(rotatedAt + 2200 - Date.now())
  t.strictSame(await introspectAsServer(old.token), { active: false }, 'the old token is dead after the grace period')
  t.equal(await isActive(created.token), true, 'the new token still works')
  t.match(await view(old.id), { state: 'expired', revoked_at: null })
})

t.test('a grace period keeps an earlier expiry of the old token', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'short', expires_in: 30 })
  const before = (await view(old.id)).expires_at
  t.equal((await rotate(old.id, { grace_period: MAX_GRACE })).statusCode, 201)
  t.equal((await view(old.id)).expires_at, before, 'the grace period never lengthens the old token\'s life')
})

t.test('the grace period is bounded by TOKEN_ROTATION_MAX_GRACE and must be a whole number of seconds', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'bounded' })
  const tokens = await countTokens()
  assertProblem(t, await rotate(old.id, { grace_period: MAX_GRACE + 1 }), 400, 'FST_ERR_VALIDATION', new RegExp(`^body/grace_period must be <= ${MAX_GRACE}$`))
  assertProblem(t, await rotate(old.id, { grace_period: -1 }), 400, 'FST_ERR_VALIDATION', /^body\/grace_period must be >= 0$/)
  assertProblem(t, await rotate(old.id, { grace_period: 1.5 }), 400, 'FST_ERR_VALIDATION', /^body\/grace_period must be integer$/)
  assertProblem(t, await rotate(old.id, { grace_period: '2' }), 400, 'FST_ERR_VALIDATION', /^body\/grace_period must be integer$/)
  assertProblem(t, await rotate(old.id, { grace: 2 }), 400, 'FST_ERR_VALIDATION', /^body must NOT have additional properties \(grace\)$/)
  t.equal(await countTokens(), tokens, 'nothing was created')
  t.equal(await isActive(old.token), true, 'the old token is untouched')
  t.equal((await rotate(old.id, { grace_period: MAX_GRACE })).statusCode, 201, 'the maximum itself is allowed')
})

t.test('regression: a rotation without a body rotates at once (it was a 400 "body must be object")', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'bodiless' })
  const res = await rotate(old.id)
  t.equal(res.statusCode, 201)
  t.equal(await isActive(old.token), false)
  t.equal(await isActive((res.json() as Created).token), true)
})

t.test('a token that never expires rotates into one that never expires', async (t) => {
  const unlimited = await build(t, { TOKEN_MAX_LIFETIME: '0', TOKEN_DEFAULT_LIFETIME: '0' })
  await seedUser(unlimited, 'carol')
  const own = await seedToken(unlimited, 'carol', { name: 'forever', scopes: ['write:tokens'] })
  const res = await unlimited.inject({ method: 'POST', url: `/api/v1/tokens/${own.id}/rotate`, headers: { authorization: bearer(own.token) } })
  t.equal(res.statusCode, 201)
  t.equal((res.json() as Created).expires_at, null)
})

t.test('rotateToken caps the copied lifetime at today\'s maximum', async (t) => {
  const old = await seedToken(app, 'alice', { name: 'long', expires_in: 86400 })
  const now = new Date()
  const issued = await app.orm.em.fork().transactional(async (tx) => await rotateToken(tx, { ...app.services.issuer, limits: { defaultLifetime: 0, maxLifetime: 3600 } }, {
    tokenId: old.id, graceSeconds: 0, actor: SYSTEM_ACTOR, rotatedBy: null, now
  }))
  t.strictSame(issued.token.expiresAt, new Date(now.getTime() + 3600_000))
  t.strictSame(issued.token.createdAt, now)
})

t.test('a token may rotate itself; its old plaintext then fails', async (t) => {
  const self = await seedToken(app, 'alice', { name: 'self', scopes: ['read:tokens', 'write:tokens'] })
  const res = await rotate(self.id, {}, self.token)
  t.equal(res.statusCode, 201)
  const created = res.json() as Created
  t.strictSame(created.scopes, ['read:tokens', 'write:tokens'])
  const withOld = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(self.token) } })
  assertProblem(t, withOld, 401, 'TESSERA_INVALID_TOKEN', 'the access token is invalid, expired or revoked')
  const withNew = await app.inject({ method: 'GET', url: `/api/v1/tokens/${created.id}`, headers: { authorization: bearer(created.token) } })
  t.equal(withNew.statusCode, 200)
  t.match(withNew.json(), { id: created.id, rotated_from: self.id })
})

t.test('a token rotates only once', async (t) => {
  t.test('a second rotation of a rotated token is a 409, with or without grace', async (t) => {
    const atOnce = await seedToken(app, 'alice', { name: 'twice' })
    const graceful = await seedToken(app, 'alice', { name: 'twice-graceful' })
    t.equal((await rotate(atOnce.id)).statusCode, 201)
    t.equal((await rotate(graceful.id, { grace_period: 30 })).statusCode, 201)
    const tokens = await countTokens()
    assertProblem(t, await rotate(atOnce.id), 409, 'TESSERA_TOKEN_REVOKED', 'this token has been revoked; create a new one instead')
    assertProblem(t, await rotate(graceful.id, { grace_period: 30 }), 409, 'TESSERA_TOKEN_ALREADY_ROTATED', 'this token has already been rotated; rotate its successor instead')
    t.equal(await countTokens(), tokens, 'the refused rotations created nothing')
    t.equal(await isActive(graceful.token), true, 'the refused rotation changed nothing')
  })

  t.test('two concurrent rotations of one token: one wins, the other is a 409', async (t) => {
    const contested = await seedToken(app, 'alice', { name: 'contested' })
    const answers = await Promise.all([rotate(contested.id, { grace_period: 10 }), rotate(contested.id, { grace_period: 10 })])
    t.strictSame(answers.map((res) => res.statusCode).sort(), [201, 409])
    const successors = await sql('select id from access_tokens where rotated_from = ?', [contested.id])
    t.equal(successors.length, 1, 'one successor')
  })

  t.test('rotating an invalidated token is a 409', async (t) => {
    const revoked = await seedToken(app, 'alice', { name: 'invalidated' })
    const invalidated = await app.inject({ method: 'POST', url: `/api/v1/tokens/${revoked.id}/invalidate`, headers: { authorization: bearer(manager.token) } })
    t.equal(invalidated.statusCode, 200)
    assertProblem(t, await rotate(revoked.id), 409, 'TESSERA_TOKEN_REVOKED', 'this token has been revoked; create a new one instead')
  })

  t.test('rotating an expired token is a 409', async (t) => {
    const expired = await seedToken(app, 'alice', { name: 'expired', expires_in: 60 })
    await sql('update access_tokens set expires_at = now() - interval \'1 second\' where id = ?', [expired.id])
    assertProblem(t, await rotate(expired.id), 409, 'TESSERA_TOKEN_EXPIRED', 'this token has expired; create a new one instead')
  })
})

t.test('rotation needs write:tokens and the caller\'s own token id', async (t) => {
  const reader = await seedToken(app, 'alice', { name: 'reader', scopes: ['read:tokens'] })
  const target = await seedToken(app, 'alice', { name: 'target' })
  assertProblem(t, await rotate(target.id, {}, reader.token), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the write:tokens scope')
  const bobs = await seedToken(app, 'bob', { name: 'bobs', scopes: ['read:tokens', 'write:tokens'] })
  assertProblem(t, await rotate(target.id, {}, bobs.token), 404, 'TESSERA_TOKEN_NOT_FOUND', `you have no token with id ${target.id}`)
  const res = await app.inject({ method: 'POST', url: `/api/v1/tokens/${target.id}/rotate` })
  assertProblem(t, res, 401, 'TESSERA_TOKEN_REQUIRED')
  t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera"')
  t.equal(await isActive(target.token), true)
})
