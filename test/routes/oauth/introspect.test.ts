import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { AccessToken } from '../../../src/entities/access-token.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { generateToken } from '../../../src/services/token-format.js'
import { revokeToken } from '../../../src/services/tokens.js'
import { assertOAuthError, basic, bearer, build, form, seedApplication, seedToken, seedUser } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"'

const app = await build(t, { PUBLIC_URL })
// One introspecting application for the tests that are not about caller authentication.
const caller = await seedApplication(app)
const callerAuth = basic(caller.clientId, caller.clientSecret)

async function introspect (on: FastifyInstance, fields: Record<string, string>, authorization?: string): Promise<LightMyRequestResponse> {
  const body = form(fields)
  return await on.inject({
    method: 'POST',
    url: '/oauth/introspect',
    payload: body.payload,
    headers: { ...body.headers, ...(authorization !== undefined ? { authorization } : {}) }
  })
}

async function tokenRow (id: string): Promise<AccessToken> {
  return await app.orm.em.fork().findOneOrFail(AccessToken, id)
}

async function auditRows (actor: string): Promise<Array<{ action: string, actor: string, target_type: string, details: unknown }>> {
  return await app.orm.em.getConnection().execute('select action, actor, target_type, details from audit_events where actor = ? order by id', [actor])
}

/** Failed authentications are audited after the answer is sent: poll briefly. */
async function waitForAudit (actor: string): Promise<Awaited<ReturnType<typeof auditRows>>> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const rows = await auditRows(actor)
    if (rows.length > 0) return rows
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return []
}

function assertInactive (t: Test, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 200)
  t.equal(res.body, '{"active":false}')
  t.strictSame(res.json(), { active: false })
  t.equal(res.headers['cache-control'], 'no-store')
}

t.test('caller authentication', async (t) => {
  const user = await seedUser(app, 'caller-auth-owner')
  const { token } = await seedToken(app, user.username)

  t.test('client_secret_basic authenticates an application with the introspect scope', async (t) => {
    const res = await introspect(app, { token }, callerAuth)
    t.equal(res.statusCode, 200)
    t.equal(res.json().active, true)
  })

  t.test('client_secret_basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async (t) => {
    const encodedSecret = caller.clientSecret.split('').map((char) => `%${char.charCodeAt(0).toString(16)}`).join('')
    const res = await introspect(app, { token }, basic(caller.clientId, encodedSecret))
    t.equal(res.statusCode, 200)
    t.equal(res.json().active, true)
  })

  t.test('client_secret_basic credentials that are not valid form-urlencoding are 401 invalid_client', async (t) => {
    const res = await introspect(app, { token }, basic(caller.clientId, '%zz'))
    assertOAuthError(t, res, 401, 'invalid_client', /client_id and client_secret are both required/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('client_secret_post authenticates with client_id and client_secret in the form', async (t) => {
    const res = await introspect(app, { token, client_id: caller.clientId, client_secret: caller.clientSecret })
    t.equal(res.statusCode, 200)
    t.equal(res.json().active, true)
  })

  t.test('a bearer token with the introspect scope authenticates', async (t) => {
    // An administrator: only they may hold a personal introspect token (PERSONAL_INTROSPECT_TOKENS=admins).
    await seedUser(app, 'bearer-caller', { admin: true })
    const own = await seedToken(app, 'bearer-caller', { scopes: ['introspect'] })
    const res = await introspect(app, { token }, bearer(own.token))
    t.equal(res.statusCode, 200)
    t.equal(res.json().active, true)
    t.equal(res.json().username, user.username)
  })

  t.test('no credentials at all is 401 invalid_client with a Basic challenge', async (t) => {
    const res = await introspect(app, { token })
    assertOAuthError(t, res, 401, 'invalid_client', /client authentication required/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a wrong secret is 401 invalid_client, and is audited as auth.failed', async (t) => {
    const res = await introspect(app, { token }, basic(caller.clientId, `${caller.clientSecret}x`))
    assertOAuthError(t, res, 401, 'invalid_client', /invalid client credentials/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    const rows = await waitForAudit(`client:${caller.clientId}`)
    t.equal(rows.length, 1)
    t.match(rows, [{ action: 'auth.failed', actor: `client:${caller.clientId}`, target_type: 'credential', details: { reason: 'invalid client credentials', route: '/oauth/introspect' } }])
  })

  t.test('an unknown client_id is 401 invalid_client, and is audited as auth.failed', async (t) => {
    const res = await introspect(app, { token, client_id: 'no-such-client', client_secret: 'guess' })
    assertOAuthError(t, res, 401, 'invalid_client', /invalid client credentials/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    const rows = await waitForAudit('client:no-such-client')
    t.equal(rows.length, 1)
    t.equal(rows[0]?.action, 'auth.failed')
  })

  t.test('a client_id without a secret is 401 invalid_client', async (t) => {
    const res = await introspect(app, { token, client_id: caller.clientId })
    assertOAuthError(t, res, 401, 'invalid_client', /client_id and client_secret are both required/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a public client cannot authenticate', async (t) => {
    const publicClient = await seedApplication(app, ['introspect'], { confidential: false })
    const res = await introspect(app, { token, client_id: publicClient.clientId, client_secret: 'guess' })
    assertOAuthError(t, res, 401, 'invalid_client')
  })

  t.test('Basic and client_secret_post at once is 400 invalid_request', async (t) => {
    const res = await introspect(app, { token, client_id: caller.clientId, client_secret: caller.clientSecret }, callerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /one client authentication method/)
  })

  t.test('a bearer token and client_secret_post at once is 400 invalid_request', async (t) => {
    await seedUser(app, 'bearer-and-post', { admin: true })
    const own = await seedToken(app, 'bearer-and-post', { scopes: ['introspect'] })
    const res = await introspect(app, { token, client_id: caller.clientId, client_secret: caller.clientSecret }, bearer(own.token))
    assertOAuthError(t, res, 400, 'invalid_request', /one client authentication method/)
  })

  t.test('an application without the introspect scope is 403 insufficient_scope', async (t) => {
    const other = await seedApplication(app, ['read:repository'])
    const res = await introspect(app, { token }, basic(other.clientId, other.clientSecret))
    assertOAuthError(t, res, 403, 'insufficient_scope', /introspect scope/)
  })

  t.test('a bearer token without the introspect scope is 403 insufficient_scope', async (t) => {
    await seedUser(app, 'no-introspect')
    const own = await seedToken(app, 'no-introspect', { scopes: ['read:tokens', 'write:repository'] })
    const res = await introspect(app, { token }, bearer(own.token))
    assertOAuthError(t, res, 403, 'insufficient_scope', /introspect scope/)
  })

  t.test('an unknown bearer token is 401 invalid_token with a Bearer challenge', async (t) => {
    const res = await introspect(app, { token }, bearer(generateToken('tsr')))
    assertOAuthError(t, res, 401, 'invalid_token')
    t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  })

  t.test('a malformed bearer token is 401 invalid_token', async (t) => {
    const res = await introspect(app, { token }, bearer('not-a-token'))
    assertOAuthError(t, res, 401, 'invalid_token')
    t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  })

  t.test('an expired bearer token is 401 invalid_token', async (t) => {
    await seedUser(app, 'expired-caller', { admin: true })
    const own = await seedToken(app, 'expired-caller', { scopes: ['introspect'] })
    await app.orm.em.getConnection().execute('update access_tokens set expires_at = now() - interval \'1 second\' where id = ?', [own.id], 'run')
    app.services.cache.invalidateToken(own.id)
    const res = await introspect(app, { token }, bearer(own.token))
    assertOAuthError(t, res, 401, 'invalid_token')
    t.equal(res.headers['www-authenticate'], INVALID_TOKEN_CHALLENGE)
  })

  t.test('an unsupported scheme is 401 invalid_client with a Basic challenge', async (t) => {
    const res = await introspect(app, { token }, 'Digest username="x"')
    assertOAuthError(t, res, 401, 'invalid_client', /unsupported or malformed Authorization/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a malformed Basic header is 401 invalid_client', async (t) => {
    const res = await introspect(app, { token }, 'Basic %%%')
    assertOAuthError(t, res, 401, 'invalid_client')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a bearer caller may not introspect the token it authenticates with (RFC 7662 §2.1)', async (t) => {
    await seedUser(app, 'self-introspect', { admin: true })
    const own = await seedToken(app, 'self-introspect', { scopes: ['introspect'] })
    const res = await introspect(app, { token: own.token }, bearer(own.token))
    assertOAuthError(t, res, 400, 'invalid_request', /itself/)
  })
})

t.test('an active token', async (t) => {
  const owner = await seedUser(app, 'active-owner')

  t.test('is described by exactly the RFC 7662 fields, with effective scopes', async (t) => {
    const { token, id } = await seedToken(app, owner.username, { scopes: ['write:repository', 'read:tokens'] })
    const row = await tokenRow(id)
    const res = await introspect(app, { token }, callerAuth)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    const iat = Math.floor(row.createdAt.getTime() / 1000)
    t.strictSame(res.json(), {
      active: true,
      scope: 'write:repository read:tokens read:repository',
      client_id: 'internal',
      username: 'active-owner',
      token_type: 'Bearer',
      exp: Math.floor((row.expiresAt as Date).getTime() / 1000),
      iat,
      nbf: iat,
      sub: owner.id,
      iss: PUBLIC_URL,
      jti: id
    })
    t.notMatch(res.body, /null/, 'no field is null')
  })

  t.test('with an audience carries aud', async (t) => {
    const { token } = await seedToken(app, owner.username, { audience: ['billing', 'search'] })
    const res = await introspect(app, { token }, callerAuth)
    t.equal(res.statusCode, 200)
    t.strictSame(res.json().aud, ['billing', 'search'])
  })

  t.test('without an audience has no aud key', async (t) => {
    const { token } = await seedToken(app, owner.username)
    const res = await introspect(app, { token }, callerAuth)
    t.equal(res.json().active, true)
    t.notOk('aud' in res.json())
  })

  t.test('is active whatever the token_type_hint says', async (t) => {
    const { token } = await seedToken(app, owner.username)
    for (const hint of ['access_token', 'refresh_token', 'something_else']) {
      const res = await introspect(app, { token, token_type_hint: hint }, callerAuth)
      t.equal(res.json().active, true, hint)
    }
  })
})

t.test('a token that never expires has no exp key', async (t) => {
  const forever = await build(t, { PUBLIC_URL, TOKEN_MAX_LIFETIME: '0', TOKEN_DEFAULT_LIFETIME: '0' })
  const owner = await seedUser(forever, 'forever')
  const client = await seedApplication(forever)
  const { token, id } = await seedToken(forever, owner.username, { scopes: ['read:repository'] })
  const res = await introspect(forever, { token }, basic(client.clientId, client.clientSecret))
  t.equal(res.statusCode, 200)
  const created = Math.floor((await forever.orm.em.fork().findOneOrFail(AccessToken, id)).createdAt.getTime() / 1000)
  t.strictSame(res.json(), {
    active: true,
    scope: 'read:repository',
    client_id: 'internal',
    username: 'forever',
    token_type: 'Bearer',
    iat: created,
    nbf: created,
    sub: owner.id,
    iss: PUBLIC_URL,
    jti: id
  })
  t.notMatch(res.body, /"exp"|null/)
})

t.test('inactive tokens are exactly {"active":false}', async (t) => {
  t.test('an unknown, well-formed token', async (t) => {
    assertInactive(t, await introspect(app, { token: generateToken('tsr') }, callerAuth))
  })

  t.test('a malformed token', async (t) => {
    assertInactive(t, await introspect(app, { token: 'not-a-token' }, callerAuth))
  })

  t.test('a token with another prefix', async (t) => {
    assertInactive(t, await introspect(app, { token: generateToken('ghp') }, callerAuth))
  })

  t.test('a token with a wrong checksum', async (t) => {
    await seedUser(app, 'checksum-owner')
    const { token } = await seedToken(app, 'checksum-owner')
    const last = token.slice(-1)
    const mistyped = token.slice(0, -1) + (last === 'a' ? 'b' : 'a')
    assertInactive(t, await introspect(app, { token: mistyped }, callerAuth))
  })

  t.test('an expired token, even one the cache has seen while it was active', async (t) => {
    await seedUser(app, 'expiring-owner')
    const { token } = await seedToken(app, 'expiring-owner', { expires_in: 1 })
    t.equal((await introspect(app, { token }, callerAuth)).json().active, true)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })

  t.test('a token whose expiry was moved into the past', async (t) => {
    await seedUser(app, 'expired-owner')
    const { token, id } = await seedToken(app, 'expired-owner')
    await app.orm.em.getConnection().execute('update access_tokens set expires_at = now() - interval \'1 minute\' where id = ?', [id], 'run')
    app.services.cache.clear()
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })

  t.test('a revoked token, at once', async (t) => {
    await seedUser(app, 'revoked-owner')
    const { token, id } = await seedToken(app, 'revoked-owner')
    t.equal((await introspect(app, { token }, callerAuth)).json().active, true)
    await app.orm.em.fork().transactional(async (tx) => {
      revokeToken(tx, await tx.findOneOrFail(AccessToken, id), SYSTEM_ACTOR, 'test')
    })
    app.services.cache.invalidateToken(id)
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })

  t.test('a token whose owner is suspended, at once', async (t) => {
    const owner = await seedUser(app, 'suspended-owner')
    const { token } = await seedToken(app, owner.username)
    t.equal((await introspect(app, { token }, callerAuth)).json().active, true)
    await app.orm.em.getConnection().execute('update users set suspended_at = now() where id = ?', [owner.id], 'run')
    app.services.cache.invalidateUser(owner.id)
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })

  t.test('a token whose owner was suspended before it was ever introspected', async (t) => {
    // Issued while active (a suspended user is given no token), suspended before any lookup.
    const owner = await seedUser(app, 'born-suspended')
    const { token } = await seedToken(app, owner.username)
    await app.orm.em.getConnection().execute('update users set suspended_at = now() where id = ?', [owner.id], 'run')
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })

  t.test('a token whose owner is deleted, at once', async (t) => {
    const owner = await seedUser(app, 'deleted-owner')
    const { token } = await seedToken(app, owner.username)
    t.equal((await introspect(app, { token }, callerAuth)).json().active, true)
    await app.orm.em.getConnection().execute('delete from users where id = ?', [owner.id], 'run')
    app.services.cache.invalidateUser(owner.id)
    assertInactive(t, await introspect(app, { token }, callerAuth))
  })
})

t.test('an application limited to scopes sees only tokens carrying one of them', async (t) => {
  await seedUser(app, 'scope-owner')
  const repositoryReader = await seedApplication(app, ['introspect'], { introspectionScopes: ['read:repository'] })
  const auth = basic(repositoryReader.clientId, repositoryReader.clientSecret)
  const reader = await seedToken(app, 'scope-owner', { scopes: ['read:repository'] })
  const writer = await seedToken(app, 'scope-owner', { scopes: ['write:repository'] })
  const other = await seedToken(app, 'scope-owner', { scopes: ['read:tokens'] })

  t.equal((await introspect(app, { token: reader.token }, auth)).json().active, true, 'a token with the scope is active')
  const implied = await introspect(app, { token: writer.token }, auth)
  t.equal(implied.json().active, true, 'write:repository implies read:repository')
  t.equal(implied.json().scope, 'write:repository read:repository')
  assertInactive(t, await introspect(app, { token: other.token }, auth))

  const unlimited = await seedApplication(app, ['introspect'])
  t.equal((await introspect(app, { token: other.token }, basic(unlimited.clientId, unlimited.clientSecret))).json().active, true, 'an unlimited application sees it')
})

t.test('an application limited to audiences sees only tokens for them', async (t) => {
  await seedUser(app, 'audience-owner')
  const billing = await seedApplication(app, ['introspect'], { introspectionAudiences: ['billing'] })
  const billingAuth = basic(billing.clientId, billing.clientSecret)
  const forBilling = await seedToken(app, 'audience-owner', { audience: ['billing'] })
  const forBoth = await seedToken(app, 'audience-owner', { audience: ['other', 'billing'] })
  const forOther = await seedToken(app, 'audience-owner', { audience: ['other'] })
  const unrestricted = await seedToken(app, 'audience-owner')

  t.test('a token limited to its audience is active', async (t) => {
    const res = await introspect(app, { token: forBilling.token }, billingAuth)
    t.equal(res.json().active, true)
    t.strictSame(res.json().aud, ['billing'])
    t.equal((await introspect(app, { token: forBoth.token }, billingAuth)).json().active, true)
  })

  t.test('a token limited to another audience is {"active":false}', async (t) => {
    assertInactive(t, await introspect(app, { token: forOther.token }, billingAuth))
  })

  t.test('an unrestricted token is active', async (t) => {
    const res = await introspect(app, { token: unrestricted.token }, billingAuth)
    t.equal(res.json().active, true)
    t.notOk('aud' in res.json())
  })

  t.test('an application without a limit sees every audience', async (t) => {
    t.equal((await introspect(app, { token: forOther.token }, callerAuth)).json().active, true)
  })
})

t.test('bad input is a 4xx OAuth error, never a 500', async (t) => {
  t.test('a missing token is 400 invalid_request naming token', async (t) => {
    const res = await introspect(app, {}, callerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body must have required property 'token'$/)
  })

  t.test('an empty token is 400 invalid_request', async (t) => {
    const res = await introspect(app, { token: '' }, callerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must NOT have fewer than 1 characters$/)
  })

  t.test('a JSON body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: callerAuth }, payload: { token: generateToken('tsr') } })
    assertOAuthError(t, res, 400, 'invalid_request', /x-www-form-urlencoded/)
  })

  t.test('a text/plain body is 415 with an OAuth error body (it was a 400: Fastify parses text/plain)', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: callerAuth, 'content-type': 'text/plain; charset=utf-8' }, payload: `token=${generateToken('tsr')}` })
    assertOAuthError(t, res, 415, 'invalid_request', /text\/plain; use application\/x-www-form-urlencoded/)
  })

  t.test('an XML body is 415 with an OAuth error body', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: callerAuth, 'content-type': 'application/xml' }, payload: '<token/>' })
    assertOAuthError(t, res, 415, 'invalid_request', /^Unsupported Media Type/)
  })

  t.test('a request without a body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { authorization: callerAuth } })
    assertOAuthError(t, res, 400, 'invalid_request')
  })

  t.test('duplicate token parameters are 400 invalid_request', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: { authorization: callerAuth, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${generateToken('tsr')}&token=${generateToken('tsr')}`
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must be string$/)
  })

  t.test('duplicate client_id parameters are 400 invalid_request', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${generateToken('tsr')}&client_id=${caller.clientId}&client_id=other&client_secret=${caller.clientSecret}`
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/client_id must be string$/)
  })

  t.test('an oversized token is 400 invalid_request', async (t) => {
    const res = await introspect(app, { token: 'a'.repeat(5000) }, callerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must NOT have more than 4096 characters$/)
  })

  t.test('a body larger than BODY_LIMIT is 413', async (t) => {
    const res = await introspect(app, { token: 'a'.repeat(app.config.BODY_LIMIT + 1) }, callerAuth)
    assertOAuthError(t, res, 413, 'invalid_request', /^Request body is too large$/)
  })
})

t.test('the OpenAPI document lists every status the endpoint answers (413 was missing)', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/documentation/json' })
  t.equal(res.statusCode, 200)
  const responses = res.json().paths['/oauth/introspect'].post.responses
  t.strictSame(Object.keys(responses).sort(), ['200', '400', '401', '403', '413', '415', '429', '503'])
})

t.test('the hot path', async (t) => {
  await seedUser(app, 'hot-owner')

  t.test('a second introspection of a token is a cache hit and does not query the database', async (t) => {
    const client = await seedApplication(app)
    const auth = basic(client.clientId, client.clientSecret)
    const { token } = await seedToken(app, 'hot-owner')

    // The hot path's statements go straight to the pg pool (no unit of work): count them there.
    const pool = await app.orm.em.getConnection().getNativeClient()
    const query = pool.query
    let queries = 0
    pool.query = function (...args: unknown[]) {
      queries++
      return (query as (...a: unknown[]) => unknown).apply(pool, args)
    } as typeof query
    t.teardown(() => { pool.query = query })

    t.equal((await introspect(app, { token }, auth)).json().active, true)
    t.equal(queries, 2, 'the first time: one query for the client, one for the token')

    queries = 0
    const hits = app.services.cache.stats.hits
    const res = await introspect(app, { token }, auth)
    t.equal(res.json().active, true)
    t.equal(app.services.cache.stats.hits, hits + 1)
    t.equal(queries, 0, 'the second time: none')
  })

  t.test('client credentials are verified with argon2 once, then remembered', async (t) => {
    const client = await seedApplication(app)
    const auth = basic(client.clientId, client.clientSecret)
    const { token } = await seedToken(app, 'hot-owner')
    const hasher = app.services.hasher
    const verify = hasher.verify
    let verifications = 0
    hasher.verify = async function (...args: Parameters<typeof verify>) {
      verifications++
      return await verify.apply(hasher, args)
    }
    t.teardown(() => { hasher.verify = verify })

    t.equal((await introspect(app, { token }, auth)).json().active, true)
    t.equal(verifications, 1)
    t.equal((await introspect(app, { token }, auth)).json().active, true)
    t.equal((await introspect(app, { token, client_id: client.clientId, client_secret: client.clientSecret })).json().active, true)
    t.equal(verifications, 1, 'no argon2 for the same credentials, sent either way')
  })
})

t.test('rate limiting per caller', async (t) => {
  const limited = await build(t, { RATE_LIMIT_INTROSPECT_PER_CLIENT: '3' })
  await seedUser(limited, 'limited-owner')
  const { token } = await seedToken(limited, 'limited-owner')

  t.test('the 4th request of a client within the window is 429 with Retry-After', async (t) => {
    const client = await seedApplication(limited)
    const auth = basic(client.clientId, client.clientSecret)
    for (let i = 1; i <= 3; i++) t.equal((await introspect(limited, { token }, auth)).statusCode, 200, `request ${i}`)
    const res = await introspect(limited, { token }, auth)
    assertOAuthError(t, res, 429, 'rate_limited', /rate limit exceeded/)
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/)

    const other = await seedApplication(limited)
    t.equal((await introspect(limited, { token }, basic(other.clientId, other.clientSecret))).statusCode, 200, 'another client is not limited')
  })

  t.test('clients using client_secret_post are limited each on its own (they shared one per-address limit: the key was made before the body was parsed)', async (t) => {
    const first = await seedApplication(limited)
    const second = await seedApplication(limited)
    for (let i = 1; i <= 3; i++) {
      t.equal((await introspect(limited, { token, client_id: first.clientId, client_secret: first.clientSecret })).statusCode, 200, `request ${i}`)
    }
    const res = await introspect(limited, { token, client_id: first.clientId, client_secret: first.clientSecret })
    assertOAuthError(t, res, 429, 'rate_limited')
    t.ok(res.headers['retry-after'])
    t.equal((await introspect(limited, { token, client_id: second.clientId, client_secret: second.clientSecret })).statusCode, 200, 'another client is not limited')
  })

  t.test('bearer callers are limited per token', async (t) => {
    await seedUser(limited, 'limited-bearer', { admin: true })
    const first = await seedToken(limited, 'limited-bearer', { scopes: ['introspect'] })
    const second = await seedToken(limited, 'limited-bearer', { scopes: ['introspect'] })
    for (let i = 1; i <= 3; i++) t.equal((await introspect(limited, { token }, bearer(first.token))).statusCode, 200, `request ${i}`)
    assertOAuthError(t, await introspect(limited, { token }, bearer(first.token)), 429, 'rate_limited')
    t.equal((await introspect(limited, { token }, bearer(second.token))).statusCode, 200, 'another token is not limited')
  })
})
