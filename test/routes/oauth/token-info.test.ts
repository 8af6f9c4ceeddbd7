import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { AccessToken } from '../../../src/entities/access-token.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { generateToken } from '../../../src/services/token-format.js'
import { revokeToken } from '../../../src/services/tokens.js'
import { basic, bearer, build, seedToken, seedUser } from '../../helper.js'

const BARE_CHALLENGE = 'Bearer realm="tessera"'
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"'

const app = await build(t)
const connection = app.orm.em.getConnection()

async function tokenInfo (authorization?: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url: '/oauth/token/info', headers: authorization !== undefined ? { authorization } : {} })
}

function assertInvalidToken (t: Test, res: LightMyRequestResponse, challenge: string): void {
  t.equal(res.statusCode, 401)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers['www-authenticate'], challenge)
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), ['error', 'error_description'])
  t.equal(body.error, 'invalid_token')
  t.type(body.error_description, 'string')
}

t.test('an active token is described Doorkeeper style, with the pre-5.x names too', async (t) => {
  const owner = await seedUser(app, 'info-owner')
  const { token, id } = await seedToken(app, owner.username, { scopes: ['write:repository', 'read:tokens'], expires_in: 3600 })
  const row = await app.orm.em.fork().findOneOrFail(AccessToken, id)
  const res = await tokenInfo(bearer(token))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.ok(body.expires_in >= 3598 && body.expires_in <= 3600, `expires_in ${String(body.expires_in)} is the time left`)
  const scope = ['write:repository', 'read:tokens', 'read:repository']
  t.strictSame(body, {
    resource_owner_id: owner.id,
    scope,
    expires_in: body.expires_in,
    application: { uid: 'internal' },
    created_at: Math.floor(row.createdAt.getTime() / 1000),
    scopes: scope,
    expires_in_seconds: body.expires_in
  })
})

t.test('expires_in counts down', async (t) => {
  await seedUser(app, 'countdown-owner')
  const { token, id } = await seedToken(app, 'countdown-owner', { expires_in: 3600 })
  await connection.execute('update access_tokens set expires_at = now() + interval \'90 seconds\' where id = ?', [id], 'run')
  app.services.cache.invalidateToken(id)
  const body = (await tokenInfo(bearer(token))).json()
  t.ok(body.expires_in >= 88 && body.expires_in <= 90, `expires_in ${String(body.expires_in)}`)
  t.equal(body.expires_in_seconds, body.expires_in)
})

t.test('a token that never expires has null expires_in', async (t) => {
  await seedUser(app, 'forever-owner')
  const { token, id } = await seedToken(app, 'forever-owner')
  // The default configuration caps lifetimes; a token from before the cap has no expiry.
  await connection.execute('update access_tokens set expires_at = null where id = ?', [id], 'run')
  app.services.cache.invalidateToken(id)
  const res = await tokenInfo(bearer(token))
  t.equal(res.statusCode, 200)
  t.match(res.json(), { expires_in: null, expires_in_seconds: null, scope: ['read:tokens'] })
  t.match(res.body, /"expires_in":null/)
})

t.test('a missing Authorization header is 401 invalid_token with a bare Bearer challenge', async (t) => {
  assertInvalidToken(t, await tokenInfo(), BARE_CHALLENGE)
})

t.test('an unknown token is 401 with error="invalid_token" in WWW-Authenticate', async (t) => {
  assertInvalidToken(t, await tokenInfo(bearer(generateToken('tsr'))), INVALID_TOKEN_CHALLENGE)
})

t.test('a malformed token is 401 invalid_token', async (t) => {
  assertInvalidToken(t, await tokenInfo(bearer('not-a-token')), INVALID_TOKEN_CHALLENGE)
})

t.test('a garbled Bearer header is 401 whose challenge and body agree on invalid_token (the challenge said invalid_request)', async (t) => {
  assertInvalidToken(t, await tokenInfo('Bearer one two'), 'Bearer realm="tessera", error="invalid_token", error_description="The Authorization header is malformed"')
})

t.test('the Basic scheme is 401 with a bare Bearer challenge, as RFC 6750 §3.1 asks (it carried error="invalid_request")', async (t) => {
  await seedUser(app, 'basic-user')
  assertInvalidToken(t, await tokenInfo(basic('basic-user', 'correct horse battery')), BARE_CHALLENGE)
})

t.test('a valid token sent under another scheme is still refused', async (t) => {
  await seedUser(app, 'wrong-scheme')
  const { token } = await seedToken(app, 'wrong-scheme')
  assertInvalidToken(t, await tokenInfo(`Token ${token}`), BARE_CHALLENGE)
})

t.test('a revoked token is 401, at once', async (t) => {
  await seedUser(app, 'revoked-info')
  const { token, id } = await seedToken(app, 'revoked-info')
  t.equal((await tokenInfo(bearer(token))).statusCode, 200)
  await app.orm.em.fork().transactional(async (tx) => {
    revokeToken(tx, await tx.findOneOrFail(AccessToken, id), SYSTEM_ACTOR, 'test')
  })
  app.services.cache.invalidateToken(id)
  assertInvalidToken(t, await tokenInfo(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('an expired token is 401', async (t) => {
  await seedUser(app, 'expired-info')
  const { token, id } = await seedToken(app, 'expired-info')
  t.equal((await tokenInfo(bearer(token))).statusCode, 200)
  await connection.execute('update access_tokens set expires_at = now() - interval \'1 second\' where id = ?', [id], 'run')
  app.services.cache.invalidateToken(id)
  assertInvalidToken(t, await tokenInfo(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('a token whose owner is suspended is 401, at once', async (t) => {
  const owner = await seedUser(app, 'suspended-info')
  const { token } = await seedToken(app, owner.username)
  t.equal((await tokenInfo(bearer(token))).statusCode, 200)
  await connection.execute('update users set suspended_at = now() where id = ?', [owner.id], 'run')
  app.services.cache.invalidateUser(owner.id)
  assertInvalidToken(t, await tokenInfo(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('a token whose owner is deleted is 401', async (t) => {
  const owner = await seedUser(app, 'deleted-info')
  const { token } = await seedToken(app, owner.username)
  await connection.execute('delete from users where id = ?', [owner.id], 'run')
  assertInvalidToken(t, await tokenInfo(bearer(token)), INVALID_TOKEN_CHALLENGE)
})
