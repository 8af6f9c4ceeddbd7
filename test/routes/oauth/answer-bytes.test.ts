import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { decodeJwt } from 'jose'
import { basic, bearer, build, introspection, seedApplication, seedToken, seedUser } from '../../helper.js'

// POST /oauth/introspect keeps the bytes of an active token's answer with its cached record and
// sends them again without serialising. These pin what that must never change: the bytes are the
// JSON path's, and no change to a token or its owner is answered from bytes made before it.

const PUBLIC_URL = 'https://auth.example.test'
const app = await build(t, { PUBLIC_URL })
const introspector = await seedApplication(app)
const caller = basic(introspector.clientId, introspector.clientSecret)
await seedUser(app, 'root', { admin: true })
const { token: adminToken } = await seedToken(app, 'root', { scopes: ['admin', 'write:tokens'] })

async function answerOf (token: string, authorization = caller): Promise<LightMyRequestResponse> {
  const res = await introspection(app, token, authorization)
  t.equal(res.statusCode, 200)
  return res
}

t.test('the cached answer is byte for byte the first one, and the same claims as the signed (object) path', async (t) => {
  await seedUser(app, 'bytes')
  const { token, id } = await seedToken(app, 'bytes', { scopes: ['read:tokens'], audience: ['billing'] })
  const first = await answerOf(token)
  const second = await answerOf(token)
  t.equal(second.body, first.body)
  t.equal(second.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(second.headers['cache-control'], 'no-store')
  const jwt = await app.inject({
    method: 'POST',
    url: '/oauth/introspect',
    payload: `token=${token}`,
    headers: { authorization: caller, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' }
  })
  t.strictSame(decodeJwt(jwt.body).token_introspection, JSON.parse(first.body))
  t.match(JSON.parse(first.body), { active: true, jti: id, aud: ['billing'], username: 'bytes', iss: PUBLIC_URL })
})

t.test('an inactive answer is the constant {"active":false}, before and after a token was cached', async (t) => {
  t.equal((await answerOf('tsr_notatoken')).body, '{"active":false}')
  t.equal((await answerOf('tsr_notatoken')).body, '{"active":false}')
})

t.test('revoked after its answer was cached: inactive at once', async (t) => {
  await seedUser(app, 'revoked-owner')
  const { token, id } = await seedToken(app, 'revoked-owner', { scopes: ['read:tokens', 'write:tokens'] })
  t.match(JSON.parse((await answerOf(token)).body), { active: true })
  const revoked = await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/invalidate`, headers: { authorization: bearer(token) } })
  t.equal(revoked.statusCode, 200)
  t.equal((await answerOf(token)).body, '{"active":false}')
})

t.test('rotated after its answer was cached: the old token inactive, the new one its own answer', async (t) => {
  await seedUser(app, 'rotated-owner')
  const { token, id } = await seedToken(app, 'rotated-owner', { scopes: ['read:tokens', 'write:tokens'] })
  const before = JSON.parse((await answerOf(token)).body)
  const rotated = await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/rotate`, headers: { authorization: bearer(token) } })
  t.equal(rotated.statusCode, 201)
  t.equal((await answerOf(token)).body, '{"active":false}')
  const after = JSON.parse((await answerOf(rotated.json().token)).body)
  t.equal(after.active, true)
  t.not(after.jti, before.jti)
})

t.test('owner suspended, then demoted, after the answer was cached: each change is in the next answer', async (t) => {
  await seedUser(app, 'changing', { admin: true })
  const { token } = await seedToken(app, 'changing', { scopes: ['admin'] })
  t.match(JSON.parse((await answerOf(token)).body), { active: true, scope: /\badmin\b/ })

  const demote = await app.inject({ method: 'PATCH', url: '/api/v1/admin/users/changing', headers: { authorization: bearer(adminToken) }, payload: { admin: false } })
  t.equal(demote.statusCode, 200)
  const demoted = JSON.parse((await answerOf(token)).body)
  t.equal(demoted.active, true)
  t.notMatch(demoted.scope, /\badmin\b/, 'the admin scope is gone with the admin right')

  const suspend = await app.inject({ method: 'PATCH', url: '/api/v1/admin/users/changing', headers: { authorization: bearer(adminToken) }, payload: { suspended: true } })
  t.equal(suspend.statusCode, 200)
  t.equal((await answerOf(token)).body, '{"active":false}')
})

t.test('expired after its answer was cached: inactive', async (t) => {
  await seedUser(app, 'expiring')
  const { token } = await seedToken(app, 'expiring', { expires_in: 1 })
  t.match(JSON.parse((await answerOf(token)).body), { active: true })
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await answerOf(token)).body, '{"active":false}')
})

t.test("one caller's cached answer is never served to a caller whose limits hide the token", async (t) => {
  await seedUser(app, 'audiences')
  const { token } = await seedToken(app, 'audiences', { audience: ['billing'] })
  const limited = await seedApplication(app, ['introspect'], { introspectionAudiences: ['shipping'] })
  const limitedCaller = basic(limited.clientId, limited.clientSecret)
  const open = await answerOf(token)
  t.match(JSON.parse(open.body), { active: true })
  t.equal((await answerOf(token, limitedCaller)).body, '{"active":false}')
  t.equal((await answerOf(token)).body, open.body, 'and the open caller still gets its answer')

  const billing = await seedApplication(app, ['introspect'], { introspectionAudiences: ['billing'] })
  t.equal((await answerOf(token, basic(billing.clientId, billing.clientSecret))).body, open.body, 'a caller allowed to see it gets the same bytes')
})

// GET /oauth/token/info keeps its answer's bytes per record too, remade when expires_in moves on.
t.test('token info: the kept bytes follow expires_in, and a revoked token is 401 at once', async (t) => {
  await seedUser(app, 'info')
  const { token, id } = await seedToken(app, 'info', { scopes: ['read:tokens', 'write:tokens'], expires_in: 3600 })
  const info = async (): Promise<LightMyRequestResponse> => await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
  const first = await info()
  t.equal(first.statusCode, 200)
  t.equal(first.headers['content-type'], 'application/json; charset=utf-8')
  const { expires_in: before } = first.json()
  t.ok(before <= 3600 && before >= 3598)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const later = await info()
  const { expires_in: after, expires_in_seconds: afterSeconds } = later.json()
  t.ok(after < before && after >= before - 2, `1.1 s later, one or two seconds less (${before} then ${after})`)
  t.equal(afterSeconds, after)
  t.strictSame({ ...later.json(), expires_in: 0, expires_in_seconds: 0 }, { ...first.json(), expires_in: 0, expires_in_seconds: 0 }, 'nothing else changed')
  const revoked = await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/invalidate`, headers: { authorization: bearer(token) } })
  t.equal(revoked.statusCode, 200)
  t.equal((await info()).statusCode, 401)
})
