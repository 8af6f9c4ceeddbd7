import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import {
  assertOAuthError, assertProblem, basic, bearer, build, form, introspection, seedApplication, seedToken, seedUser
} from '../helper.js'
import { signIn, PASSWORD } from '../web/helper.js'

/*
 * Regressions from the security review (issue 12, "authorization"): each test is named after the
 * hole it pins, and failed before the fix.
 */

const app = await build(t)
const ISSUER = app.config.publicUrl

await seedUser(app, 'root', { admin: true })
const rootToken = await seedToken(app, 'root', { name: 'root-admin', scopes: ['admin'] })
const asRoot = { authorization: bearer(rootToken.token) }

const resourceServer = await seedApplication(app, ['introspect'])
const asResourceServer = basic(resourceServer.clientId, resourceServer.clientSecret)

async function patchUser (username: string, payload: Record<string, unknown>): Promise<void> {
  const res = await app.inject({ method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: asRoot, payload })
  if (res.statusCode !== 200) throw new Error(`PATCH ${username} answered ${res.statusCode}: ${res.body}`)
}

async function rotate (id: string, token: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/rotate`, headers: { authorization: bearer(token) }, payload: {} })
}

async function rotations (id: string): Promise<number> {
  const [row] = await app.orm.em.getConnection().execute<Array<{ n: number }>>('select count(*)::int as n from access_tokens where rotated_from = ?', [id])
  return row?.n ?? 0
}

async function introspected (token: string, on: FastifyInstance = app): Promise<Record<string, unknown>> {
  const res = await introspection(on, token, asResourceServer)
  t.equal(res.statusCode, 200)
  return res.json()
}

t.test('rotation mints nothing the caller could not use itself', async (t) => {
  const owner = await seedUser(app, 'rita', { admin: true })
  const writer = await seedToken(app, owner.username, { name: 'writer', scopes: ['write:tokens'] })
  const strong = await seedToken(app, owner.username, { name: 'strong', scopes: ['admin', 'write:tokens'] })
  const reader = await seedToken(app, owner.username, { name: 'reader', scopes: ['read:tokens'] })

  t.test('a write:tokens token cannot rotate an admin token of the same user (it received the admin plaintext)', async (t) => {
    const res = await rotate(strong.id, writer.token)
    assertProblem(t, res, 403, 'TESSERA_ROTATION_BEYOND_CALLER', /this token lacks admin/)
    t.notMatch(res.body, /tsr_/, 'no plaintext in the answer')
    t.equal(await rotations(strong.id), 0, 'nothing rotated')
    t.equal((await introspected(strong.token)).active, true, 'the target still works')
  })

  t.test('a token holding every scope of the target may rotate it', async (t) => {
    const res = await rotate(reader.id, writer.token)
    t.equal(res.statusCode, 201, res.body)
    t.strictSame(res.json().scopes, ['read:tokens'])
  })

  t.test('a token may rotate itself', async (t) => {
    const self = await seedToken(app, owner.username, { name: 'self', scopes: ['admin', 'write:tokens'] })
    t.equal((await rotate(self.id, self.token)).statusCode, 201)
  })

  t.test('a token limited to an audience cannot rotate an unrestricted token, even with the scopes', async (t) => {
    const limited = await seedToken(app, owner.username, { name: 'limited', scopes: ['write:tokens'], audience: [ISSUER, 'billing'] })
    const open = await seedToken(app, owner.username, { name: 'open', scopes: ['read:tokens'] })
    assertProblem(t, await rotate(open.id, limited.token), 403, 'TESSERA_ROTATION_BEYOND_CALLER', /fewer audiences/)
    const narrower = await seedToken(app, owner.username, { name: 'narrower', scopes: ['read:tokens'], audience: ['billing'] })
    t.equal((await rotate(narrower.id, limited.token)).statusCode, 201, 'a target limited within the caller\'s audiences may be rotated')
  })

  t.test('the web session may rotate any of the user\'s tokens (the password was verified at sign-in)', async (t) => {
    const user = await seedUser(app, 'sam', { admin: true, password: PASSWORD })
    const adminToken = await seedToken(app, user.username, { name: 'sams-admin', scopes: ['admin'] })
    const session = await signIn(app, 'sam')
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/tokens/${adminToken.id}/rotate`,
      headers: { cookie: session.cookie, 'x-csrf-token': session.csrf },
      payload: {}
    })
    t.equal(res.statusCode, 201, res.body)
  })
})

t.test('demotion takes effect everywhere, at once', async (t) => {
  const user = await seedUser(app, 'dora', { admin: true })
  const adminToken = await seedToken(app, user.username, { name: 'dora-admin', scopes: ['admin', 'write:tokens', 'read:repository'] })
  t.match(await introspected(adminToken.token), { active: true, scope: 'admin write:tokens read:repository read:tokens' })
  const verified = await app.inject({ method: 'GET', url: '/auth/verify?scope=admin', headers: { authorization: bearer(adminToken.token) } })
  t.equal(verified.statusCode, 200, 'cached while an admin')

  await patchUser('dora', { admin: false })

  t.test('the old admin token no longer introspects with admin (resource servers kept seeing scope "admin")', async (t) => {
    t.match(await introspected(adminToken.token), { active: true, scope: 'write:tokens read:repository read:tokens' })
  })

  t.test('it no longer passes /auth/verify?scope=admin', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/auth/verify?scope=admin', headers: { authorization: bearer(adminToken.token) } })
    assertOAuthError(t, res, 403, 'insufficient_scope')
  })

  t.test('token/info no longer lists admin', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(adminToken.token) } })
    t.strictSame(res.json().scope, ['write:tokens', 'read:repository', 'read:tokens'])
  })

  t.test('the owner\'s listing shows admin as granted but not as effective', async (t) => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/tokens/${adminToken.id}`, headers: { authorization: bearer(adminToken.token) } })
    t.match(res.json(), { scopes: ['admin', 'write:tokens', 'read:repository'], effective_scopes: ['write:tokens', 'read:repository', 'read:tokens'] })
  })

  t.test('a demoted admin cannot rotate an old admin token into a new one', async (t) => {
    const res = await rotate(adminToken.id, adminToken.token)
    assertProblem(t, res, 403, 'TESSERA_ADMIN_SCOPE_FORBIDDEN')
    t.equal(await rotations(adminToken.id), 0)
  })
})

t.test('who may introspect, and within which limits', async (t) => {
  t.test('an application limited by introspection_audiences is held to them with its own client_credentials token (the limits were bypassed)', async (t) => {
    const limited = await seedApplication(app, ['introspect'], { introspectionAudiences: ['billing'] })
    const issued = await app.inject({ method: 'POST', url: '/oauth/token', ...form({ grant_type: 'client_credentials', scope: 'introspect' }), headers: { ...form({}).headers, authorization: basic(limited.clientId, limited.clientSecret) } })
    t.equal(issued.statusCode, 200, issued.body)
    const ownToken = issued.json().access_token as string

    const user = await seedUser(app, 'olga')
    const elsewhere = await seedToken(app, user.username, { name: 'elsewhere', scopes: ['read:repository'], audience: ['shipping'] })
    const billing = await seedToken(app, user.username, { name: 'billing', scopes: ['read:repository'], audience: ['billing'] })

    const asBearer = await introspection(app, elsewhere.token, bearer(ownToken))
    t.strictSame(asBearer.json(), { active: false }, 'a token limited to another audience is inactive to it, as with its client credentials')
    const asClient = await introspection(app, elsewhere.token, basic(limited.clientId, limited.clientSecret))
    t.strictSame(asClient.json(), { active: false })
    t.equal((await introspection(app, billing.token, bearer(ownToken))).json().active, true, 'its own audience stays visible')
  })

  t.test('a user who is not an administrator cannot mint a personal introspect token (PERSONAL_INTROSPECT_TOKENS=admins)', async (t) => {
    await seedUser(app, 'ursula', { password: PASSWORD })
    const res = await app.inject({ method: 'POST', url: '/api/v1/users/ursula/tokens', headers: { authorization: basic('ursula', PASSWORD) }, payload: { name: 'peek', scopes: ['introspect'] } })
    assertProblem(t, res, 403, 'TESSERA_INTROSPECT_SCOPE_FORBIDDEN', /only administrators may hold a personal token with the introspect scope/)
  })

  t.test('a demoted admin\'s introspect token can no longer introspect', async (t) => {
    const user = await seedUser(app, 'ivan', { admin: true })
    const peek = await seedToken(app, user.username, { name: 'peek', scopes: ['introspect'] })
    const other = await seedToken(app, 'root', { name: `probe-${Date.now()}`, scopes: ['read:tokens'] })
    t.equal((await introspection(app, other.token, bearer(peek.token))).statusCode, 200)
    await patchUser('ivan', { admin: false })
    const res = await introspection(app, other.token, bearer(peek.token))
    assertOAuthError(t, res, 403, 'insufficient_scope')
  })

  t.test('with PERSONAL_INTROSPECT_TOKENS=everyone any user may hold one; with nobody, not even an admin', async (t) => {
    const everyone = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'everyone' })
    await seedUser(everyone, 'vera')
    t.ok((await seedToken(everyone, 'vera', { scopes: ['introspect'] })).token)
    const nobody = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'nobody' })
    await seedUser(nobody, 'boss', { admin: true })
    await t.rejects(seedToken(nobody, 'boss', { scopes: ['introspect'] }), { code: 'TESSERA_INTROSPECT_SCOPE_FORBIDDEN', message: /only applications may hold/ })
  })
})

t.test('Tessera\'s own API is an audience: a token limited elsewhere does not act on it', async (t) => {
  const user = await seedUser(app, 'alma')
  const billing = await seedToken(app, user.username, { name: 'billing-only', scopes: ['read:tokens'], audience: ['billing'] })

  t.test('a token limited to billing is refused on /api/v1/tokens (it worked)', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(billing.token) } })
    assertProblem(t, res, 401, 'TESSERA_TOKEN_AUDIENCE_MISMATCH')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera", error="invalid_token", error_description="The access token is not valid for this server"')
  })

  t.test('it is refused as an introspection caller', async (t) => {
    const everyone = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'everyone' })
    await seedUser(everyone, 'alma')
    const limited = await seedToken(everyone, 'alma', { name: 'peek', scopes: ['introspect'], audience: ['billing'] })
    const other = await seedToken(everyone, 'alma', { name: 'other' })
    const res = await introspection(everyone, other.token, bearer(limited.token))
    assertOAuthError(t, res, 401, 'invalid_token')
    const forUs = await seedToken(everyone, 'alma', { name: 'peek-here', scopes: ['introspect'], audience: [everyone.config.publicUrl] })
    t.equal((await introspection(everyone, other.token, bearer(forUs.token))).json().active, true, 'limited to this server: accepted')
  })

  t.test('a token whose audience includes PUBLIC_URL works on the API', async (t) => {
    const here = await seedToken(app, user.username, { name: 'here', scopes: ['read:tokens'], audience: [ISSUER, 'billing'] })
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(here.token) } })).statusCode, 200)
  })

  t.test('the validation endpoints still answer for it (a resource server validates the tokens it receives), and token/info reports aud', async (t) => {
    const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(billing.token) } })
    t.equal(info.statusCode, 200)
    t.strictSame(info.json().aud, ['billing'])
    const verified = await app.inject({ method: 'GET', url: '/auth/verify?audience=billing', headers: { authorization: bearer(billing.token) } })
    t.equal(verified.statusCode, 200)
    const unrestricted = await seedToken(app, user.username, { name: 'anywhere' })
    const open = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(unrestricted.token) } })
    t.notOk('aud' in open.json(), 'no aud for an unrestricted token')
  })
})

t.test('sessions end with the credentials that vouched for them (they kept working)', async (t) => {
  async function sessionWorks (cookie: string): Promise<number> {
    return (await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } })).statusCode
  }
  async function sessionsOf (username: string): Promise<number> {
    const [row] = await app.orm.em.getConnection().execute<Array<{ n: number }>>('select count(*)::int as n from web_sessions s join users u on u.id = s.user_id where u.username = ?', [username])
    return row?.n ?? 0
  }

  t.test('a password change ends every session of the user', async (t) => {
    await seedUser(app, 'pia', { password: PASSWORD })
    const first = await signIn(app, 'pia')
    t.equal(await sessionWorks(first.cookie), 200)
    await patchUser('pia', { password: 'another long password' })
    t.equal(await sessionsOf('pia'), 0, 'deleted, not merely blocked')
    t.equal(await sessionWorks(first.cookie), 401)
  })

  t.test('removing the password ends them too', async (t) => {
    await seedUser(app, 'rosa', { password: PASSWORD })
    const session = await signIn(app, 'rosa')
    await patchUser('rosa', { password: null })
    t.equal(await sessionWorks(session.cookie), 401)
  })

  t.test('after suspension and unsuspension the same cookie stays dead (the README said sessions end)', async (t) => {
    await seedUser(app, 'sol', { password: PASSWORD })
    const session = await signIn(app, 'sol')
    await patchUser('sol', { suspended: true })
    t.equal(await sessionsOf('sol'), 0)
    await patchUser('sol', { suspended: false })
    t.equal(await sessionWorks(session.cookie), 401)
  })

  t.test('a demotion ends the sessions of the former admin', async (t) => {
    await seedUser(app, 'tara', { admin: true, password: PASSWORD })
    const session = await signIn(app, 'tara')
    await patchUser('tara', { admin: false })
    t.equal(await sessionWorks(session.cookie), 401)
  })

  t.test('a change of email leaves sessions alone', async (t) => {
    await seedUser(app, 'uma', { password: PASSWORD })
    const session = await signIn(app, 'uma')
    await patchUser('uma', { email: 'uma@example.test' })
    t.equal(await sessionWorks(session.cookie), 200)
  })
})
