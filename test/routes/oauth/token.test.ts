import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { AccessToken } from '../../../src/entities/access-token.js'
import { Application } from '../../../src/entities/application.js'
import { loadConfig } from '../../../src/config.js'
import { assertOAuthError, basic, bearer, build, form, introspection, seedApplication, seedToken, seedUser, TEST_ENV } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'

const app = await build(t, { PUBLIC_URL })
const client = await seedApplication(app, ['introspect', 'write:repository'])
const clientAuth = basic(client.clientId, client.clientSecret)
// Introspects the issued tokens in the tests that look at them from a resource server's side.
const resourceServer = await seedApplication(app, ['introspect'])

async function requestToken (on: FastifyInstance, fields: Record<string, string>, authorization?: string): Promise<LightMyRequestResponse> {
  const body = form(fields)
  return await on.inject({
    method: 'POST',
    url: '/oauth/token',
    payload: body.payload,
    headers: { ...body.headers, ...(authorization !== undefined ? { authorization } : {}) }
  })
}

// The answer whatever its status, as a resource server sees it.
const introspect = async (token: string): Promise<Record<string, unknown>> => (await introspection(app, token, basic(resourceServer.clientId, resourceServer.clientSecret))).json()

async function tokenCount (): Promise<number> {
  return await app.orm.em.fork().count(AccessToken, {})
}

function assertTokenResponse (t: Test, res: LightMyRequestResponse, scope: string, expiresIn = 3600): string {
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type'])
  t.match(body.access_token, /^tsr_[A-Za-z0-9]+$/)
  t.equal(body.token_type, 'Bearer')
  t.equal(body.expires_in, expiresIn)
  t.equal(body.scope, scope)
  return body.access_token
}

t.test('the client_credentials grant (RFC 6749 §4.4)', async (t) => {
  t.test('client_secret_basic gets exactly the RFC 6749 §5.1 fields, with no-store and no-cache', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials' }, clientAuth)
    assertTokenResponse(t, res, 'introspect write:repository')
  })

  t.test('client_secret_post gets the same answer', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret })
    assertTokenResponse(t, res, 'introspect write:repository')
  })

  t.test('client_secret_basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async (t) => {
    const encodedSecret = client.clientSecret.split('').map((char) => `%${char.charCodeAt(0).toString(16)}`).join('')
    const res = await requestToken(app, { grant_type: 'client_credentials' }, basic(client.clientId, encodedSecret))
    assertTokenResponse(t, res, 'introspect write:repository')
  })

  t.test('the token belongs to the application and to no user, and expires after CLIENT_CREDENTIALS_TOKEN_LIFETIME', async (t) => {
    const before = Date.now()
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
    const row = await app.orm.em.fork().findOneOrFail(AccessToken, { digest: app.services.digester.digest(access) }, { populate: ['application'] })
    t.equal(row.user, null)
    t.equal(row.application.clientId, client.clientId)
    t.equal(row.name, 'client_credentials')
    t.strictSame(row.scopes, ['introspect', 'write:repository'])
    t.equal(row.audience, null)
    t.equal(row.createdBy, null)
    t.equal((row.expiresAt as Date).getTime() - row.createdAt.getTime(), 3600 * 1000)
    t.ok(row.createdAt.getTime() >= before - 1000 && row.createdAt.getTime() <= Date.now())
  })

  t.test('the token introspects as active, for the application itself (sub is the client_id, no username)', async (t) => {
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
    const answer = await introspect(access)
    t.match(answer, { active: true, client_id: client.clientId, sub: client.clientId, scope: 'introspect write:repository read:repository', token_type: 'Bearer', iss: PUBLIC_URL })
    t.notOk('username' in answer, 'no username: no user owns it')
    t.equal((answer.exp as number) - (answer.iat as number), 3600)
  })

  t.test('repeated requests each get a new, live token (token names are unique per user only)', async (t) => {
    const first = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
    const second = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
    t.not(first, second)
    t.equal((await introspect(first)).active, true)
    t.equal((await introspect(second)).active, true)
  })

  t.test('issuance is audited as token.created by the client', async (t) => {
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect' }, clientAuth), 'introspect')
    const row = await app.orm.em.fork().findOneOrFail(AccessToken, { digest: app.services.digester.digest(access) })
    const events = await app.orm.em.getConnection().execute('select action, actor, actor_id, target_type, details from audit_events where target_id = ?', [row.id])
    t.match(events, [{
      action: 'token.created',
      actor: `client:${client.clientId}`,
      actor_id: null,
      target_type: 'token',
      details: { owner: null, client_id: client.clientId, scopes: ['introspect'], expires_at: (row.expiresAt as Date).toISOString() }
    }])
    t.equal(events.length, 1)
  })

  t.test('the token works as a bearer token: it may introspect others when granted introspect', async (t) => {
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect' }, clientAuth), 'introspect')
    const other = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'write:repository' }, clientAuth), 'write:repository')
    const res = await introspection(app, other, bearer(access))
    t.equal(res.statusCode, 200)
    t.match(res.json(), { active: true, scope: 'write:repository read:repository' })
  })
})

t.test('token lifetime', async (t) => {
  t.test('CLIENT_CREDENTIALS_TOKEN_LIFETIME sets expires_in (here with no TOKEN_MAX_LIFETIME at all)', async (t) => {
    const short = await build(t, { CLIENT_CREDENTIALS_TOKEN_LIFETIME: '120', TOKEN_MAX_LIFETIME: '0' })
    const own = await seedApplication(short, ['introspect'])
    assertTokenResponse(t, await requestToken(short, { grant_type: 'client_credentials' }, basic(own.clientId, own.clientSecret)), 'introspect', 120)
  })

  t.test('a lower TOKEN_MAX_LIFETIME caps it, rather than failing every request', async (t) => {
    const capped = await build(t, { TOKEN_MAX_LIFETIME: '90', TOKEN_DEFAULT_LIFETIME: '60' })
    const own = await seedApplication(capped, ['introspect'])
    assertTokenResponse(t, await requestToken(capped, { grant_type: 'client_credentials' }, basic(own.clientId, own.clientSecret)), 'introspect', 90)
  })

  t.test('CLIENT_CREDENTIALS_TOKEN_LIFETIME defaults to 3600 and must be at least 60', async (t) => {
    t.equal(loadConfig(TEST_ENV).CLIENT_CREDENTIALS_TOKEN_LIFETIME, 3600)
    t.equal(loadConfig({ ...TEST_ENV, CLIENT_CREDENTIALS_TOKEN_LIFETIME: '60' }).CLIENT_CREDENTIALS_TOKEN_LIFETIME, 60)
    t.throws(() => loadConfig({ ...TEST_ENV, CLIENT_CREDENTIALS_TOKEN_LIFETIME: '59' }), { name: 'ConfigError', message: 'invalid configuration: CLIENT_CREDENTIALS_TOKEN_LIFETIME must be >= 60' })
  })
})

t.test('requested scope', async (t) => {
  t.test('absent: every scope the application holds', async (t) => {
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
  })

  t.test('empty: treated as absent (RFC 6749 §3.2)', async (t) => {
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: '' }, clientAuth), 'introspect write:repository')
  })

  t.test('a subset is granted as asked, in request order, without duplicates', async (t) => {
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'write:repository introspect write:repository' }, clientAuth), 'write:repository introspect')
  })

  t.test('read:X may be asked for by an application that holds write:X (write implies read)', async (t) => {
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'read:repository' }, clientAuth), 'read:repository')
    t.match(await introspect(access), { active: true, scope: 'read:repository' })
  })

  t.test('a scope the application does not hold is 400 invalid_scope naming it, and nothing is issued', async (t) => {
    const before = await tokenCount()
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect read:tokens' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^scope read:tokens not allowed for this application$/)
    t.equal(await tokenCount(), before)
  })

  t.test('several refused scopes are all named', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'read:tokens introspect write:tokens' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^scopes read:tokens, write:tokens not allowed for this application$/)
  })

  t.test('write:X is refused to an application that holds only read:X', async (t) => {
    const reader = await seedApplication(app, ['read:repository'])
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'write:repository' }, basic(reader.clientId, reader.clientSecret))
    assertOAuthError(t, res, 400, 'invalid_scope', /^scope write:repository not allowed for this application$/)
  })

  t.test('an unknown scope is 400 invalid_scope naming it', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect deploy:everything' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^unknown scope deploy:everything$/)
  })

  t.test('several unknown scopes are all named, once each', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'deploy:a introspect deploy:b deploy:a' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^unknown scopes deploy:a, deploy:b$/)
  })

  t.test('scopes separated by commas are one unknown scope (RFC 6749 §3.3 separates with spaces)', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect,write:repository' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^unknown scope introspect,write:repository$/)
  })

  t.test('a requested scope is echoed in printable ASCII only, without quotes or backslashes', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'a"b\\c\u00e9' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_scope', /^unknown scope a\?b\?c\?$/)
  })

  t.test('admin is never granted, even to an application that holds it', async (t) => {
    const holder = await seedApplication(app, ['admin', 'introspect'])
    const auth = basic(holder.clientId, holder.clientSecret)
    assertOAuthError(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'admin' }, auth), 400, 'invalid_scope',
      /^the admin scope is never granted to a client: it belongs to users$/)
    assertOAuthError(t, await requestToken(app, { grant_type: 'client_credentials', scope: 'introspect admin' }, auth), 400, 'invalid_scope')
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, auth), 'introspect')
  })

  t.test('an application holding nothing grantable is 400 invalid_scope', async (t) => {
    const adminOnly = await seedApplication(app, ['admin'])
    const res = await requestToken(app, { grant_type: 'client_credentials' }, basic(adminOnly.clientId, adminOnly.clientSecret))
    assertOAuthError(t, res, 400, 'invalid_scope', /^this application holds no scope the client_credentials grant can issue$/)
  })
})

t.test('client authentication', async (t) => {
  t.test('no credentials is 401 invalid_client with a Basic challenge', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials' })
    assertOAuthError(t, res, 401, 'invalid_client', /client authentication required/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a wrong secret is 401 invalid_client with a Basic challenge, and nothing is issued', async (t) => {
    const before = await tokenCount()
    const res = await requestToken(app, { grant_type: 'client_credentials' }, basic(client.clientId, `${client.clientSecret}x`))
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    t.equal(await tokenCount(), before)
  })

  t.test('a wrong secret in the form is 401 invalid_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'guess' })
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('an unknown client is 401 invalid_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: 'no-such-client', client_secret: 'guess' })
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a client_id without a secret is 401 invalid_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: client.clientId })
    assertOAuthError(t, res, 401, 'invalid_client', /client_id and client_secret are both required/)
  })

  t.test('a bearer token is not client authentication: 401 invalid_client with a Basic challenge, even for a live token', async (t) => {
    await seedUser(app, 'bearer-at-token-endpoint', { admin: true })
    const personal = await seedToken(app, 'bearer-at-token-endpoint', { scopes: ['introspect'] })
    const before = await tokenCount()
    const res = await requestToken(app, { grant_type: 'client_credentials' }, bearer(personal.token))
    assertOAuthError(t, res, 401, 'invalid_client', /^a bearer token cannot authenticate a client here/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    t.equal(await tokenCount(), before)
  })

  t.test('an application\'s own token cannot get it another token', async (t) => {
    const access = assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
    assertOAuthError(t, await requestToken(app, { grant_type: 'client_credentials' }, bearer(access)), 401, 'invalid_client')
  })

  t.test('a Basic user name that is not valid form-urlencoding is 401 invalid_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials' }, basic('%zz', 'guess'))
    assertOAuthError(t, res, 401, 'invalid_client', /client_id and client_secret are both required/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('an unsupported Authorization scheme is 401 invalid_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials' }, 'Digest username="x"')
    assertOAuthError(t, res, 401, 'invalid_client')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('client_secret_basic and client_secret_post at once is 400 invalid_request', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecret }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /one client authentication method/)
  })

  t.test('a public client naming itself is 400 unauthorized_client', async (t) => {
    const publicClient = await seedApplication(app, ['introspect'], { confidential: false })
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: publicClient.clientId })
    assertOAuthError(t, res, 400, 'unauthorized_client', /^a public client cannot use the client_credentials grant/)
    t.equal(res.headers['www-authenticate'], undefined)
  })

  t.test('a public client in Basic with an empty or made-up secret is 400 unauthorized_client', async (t) => {
    const publicClient = await seedApplication(app, ['introspect'], { confidential: false })
    assertOAuthError(t, await requestToken(app, { grant_type: 'client_credentials' }, basic(publicClient.clientId, '')), 400, 'unauthorized_client')
    assertOAuthError(t, await requestToken(app, { grant_type: 'client_credentials' }, basic(publicClient.clientId, 'guess')), 400, 'unauthorized_client')
  })

  t.test('the built-in internal application is a public client: 400 unauthorized_client', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', client_id: 'internal' })
    assertOAuthError(t, res, 400, 'unauthorized_client')
  })

  t.test('an application deleted after its credentials were verified is 401 invalid_client (another replica deleted it)', async (t) => {
    const doomed = await seedApplication(app, ['introspect'])
    const auth = basic(doomed.clientId, doomed.clientSecret)
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, auth), 'introspect')
    // Deleted behind this instance's back: its verified-credentials cache still knows the secret.
    await app.orm.em.fork().nativeDelete(Application, { id: doomed.id })
    const res = await requestToken(app, { grant_type: 'client_credentials' }, auth)
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })
})

t.test('grant types', async (t) => {
  t.test('a missing grant_type is 400 invalid_request naming it', async (t) => {
    const res = await requestToken(app, { scope: 'introspect' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body must have required property 'grant_type'$/)
  })

  t.test('an empty grant_type is 400 invalid_request, as if missing', async (t) => {
    const res = await requestToken(app, { grant_type: '' }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/grant_type must NOT have fewer than 1 characters$/)
  })

  for (const grant of ['password', 'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', 'CLIENT_CREDENTIALS']) {
    t.test(`grant_type=${grant} is 400 unsupported_grant_type`, async (t) => {
      const before = await tokenCount()
      const res = await requestToken(app, { grant_type: grant, username: 'someone', password: 'secret', code: 'abc' }, clientAuth)
      assertOAuthError(t, res, 400, 'unsupported_grant_type', new RegExp(`^grant_type ${grant} is not supported: this server issues client_credentials only$`))
      t.equal(await tokenCount(), before)
    })
  }

  t.test('the client is authenticated before the grant type is looked at', async (t) => {
    const res = await requestToken(app, { grant_type: 'password' }, basic(client.clientId, 'wrong'))
    assertOAuthError(t, res, 401, 'invalid_client')
  })

  t.test('duplicate grant_type parameters are 400 invalid_request', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=client_credentials&grant_type=client_credentials'
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/grant_type must be string$/)
  })
})

t.test('bad input is a 4xx OAuth error, never a 500', async (t) => {
  t.test('duplicate scope parameters are 400 invalid_request', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=client_credentials&scope=introspect&scope=write:repository'
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/scope must be string$/)
  })

  t.test('duplicate client_id parameters are 400 invalid_request', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=client_credentials&client_id=${client.clientId}&client_id=other&client_secret=${client.clientSecret}`
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/client_id must be string$/)
  })

  t.test('a JSON body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: clientAuth }, payload: { grant_type: 'client_credentials' } })
    assertOAuthError(t, res, 400, 'invalid_request', /^the request body must be application\/x-www-form-urlencoded$/)
  })

  t.test('a text/plain body is 415 with an OAuth error body', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: clientAuth, 'content-type': 'text/plain' }, payload: 'grant_type=client_credentials' })
    assertOAuthError(t, res, 415, 'invalid_request', /text\/plain; use application\/x-www-form-urlencoded/)
  })

  t.test('a request without a body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: clientAuth } })
    assertOAuthError(t, res, 400, 'invalid_request')
  })

  t.test('an oversized scope is 400 invalid_request', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'a'.repeat(2049) }, clientAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/scope must NOT have more than 2048 characters$/)
  })

  t.test('a body larger than BODY_LIMIT is 413', async (t) => {
    const res = await requestToken(app, { grant_type: 'client_credentials', scope: 'a'.repeat(app.config.BODY_LIMIT + 1) }, clientAuth)
    assertOAuthError(t, res, 413, 'invalid_request', /^Request body is too large$/)
  })

  t.test('GET is not a token request', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/oauth/token?grant_type=client_credentials', headers: { authorization: clientAuth } })
    t.equal(res.statusCode, 404)
  })
})

t.test('rate limiting per client', async (t) => {
  t.test('the 601st request of a client within a minute is 429 with Retry-After; other clients are unaffected', async (t) => {
    const busy = await seedApplication(app, ['introspect'])
    const auth = basic(busy.clientId, busy.clientSecret)
    // Unsupported grants: authenticated (from the credential cache) and answered without a write.
    for (let i = 0; i < 600; i++) {
      const res = await requestToken(app, { grant_type: 'password' }, auth)
      if (res.statusCode !== 400) t.fail(`request ${i + 1} was ${res.statusCode}`)
    }
    const limited = await requestToken(app, { grant_type: 'client_credentials' }, auth)
    assertOAuthError(t, limited, 429, 'rate_limited', /^rate limit exceeded for this client: at most 600 in 60 seconds/)
    t.match(limited.headers['retry-after'], /^\d+$/)
    const viaPost = await requestToken(app, { grant_type: 'client_credentials', client_id: busy.clientId, client_secret: busy.clientSecret })
    t.equal(viaPost.statusCode, 429, 'client_secret_post counts against the same client')
    assertTokenResponse(t, await requestToken(app, { grant_type: 'client_credentials' }, clientAuth), 'introspect write:repository')
  })
})
