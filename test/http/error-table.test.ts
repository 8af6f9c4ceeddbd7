import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { Errors } from '../../src/errors.js'
import { generateToken } from '../../src/services/token-format.js'
import { basic, bearer, build, buildWith, createTestDatabase, form, PROBLEM_JSON, seedApplication, seedToken, seedUser } from '../helper.js'

/**
 * Every error a client can provoke, route family × failure, with its whole wire shape: status,
 * media type, the exact set of body keys, the stable code (or OAuth `error`) and the exact
 * WWW-Authenticate challenge, or its absence. REST routes answer RFC 9457 problem+json; OAuth
 * routes answer RFC 6749 §5.2 JSON that is never cached.
 */

const OAUTH_JSON = 'application/json; charset=utf-8'
const PROBLEM_KEYS = ['code', 'detail', 'instance', 'status', 'title', 'type']
const OAUTH_KEYS = ['error', 'error_description']

const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'
const BARE_BEARER = 'Bearer realm="tessera"'
const INVALID_TOKEN = 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"'
const MALFORMED = 'Bearer realm="tessera", error="invalid_token", error_description="The Authorization header is malformed"'
const insufficientScope = (scope: string): string =>
  `Bearer realm="tessera", error="insufficient_scope", error_description="Requires the ${scope} scope", scope="${scope}"`

const PASSWORD = 'correct horse battery'
const DATABASE_DETAIL = 'the database is unavailable; try again shortly'

/** One expected answer: a REST problem (`code`) or an OAuth error (`error`), with its challenge or none. */
type Expected =
  | { status: number, code: string, challenge: string | null, detail?: string | RegExp, validation?: boolean }
  | { status: number, error: string, challenge: string | null, detail?: string | RegExp }

/** Asserts the whole wire shape of an error answer in its route family. */
function assertErrorAnswer (t: Test, res: LightMyRequestResponse, expected: Expected): void {
  t.equal(res.statusCode, expected.status, `status ${expected.status}`)
  t.equal(res.headers['www-authenticate'], expected.challenge ?? undefined, expected.challenge === null ? 'no challenge' : 'the exact challenge')
  const body = res.json() as Record<string, unknown>
  if ('code' in expected) {
    t.equal(res.headers['content-type'], PROBLEM_JSON, 'problem+json')
    const keys = expected.validation === true ? [...PROBLEM_KEYS, 'errors'].sort() : PROBLEM_KEYS
    t.strictSame(Object.keys(body).sort(), keys, 'exactly the problem keys')
    t.match(body, {
      type: 'about:blank',
      title: STATUS_CODES[expected.status],
      status: expected.status,
      code: expected.code,
      detail: expected.detail ?? String
    })
    t.equal(body.instance, res.headers['x-request-id'], 'instance is the request id')
    t.type(body.instance, 'string')
  } else {
    t.equal(res.headers['content-type'], OAUTH_JSON, 'OAuth JSON')
    t.equal(res.headers['cache-control'], 'no-store', 'never cached')
    t.strictSame(Object.keys(body).sort(), OAUTH_KEYS, 'exactly error and error_description')
    t.equal(body.error, expected.error)
    t.type(body.error_description, 'string')
    if (expected.detail !== undefined) t.match(body.error_description, expected.detail)
  }
}

// alice, no administrator, holds a personal introspect token below: the policy allows it here.
const app = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'everyone' })

// Callers of every kind. State changes (suspension, demotion) go through the admin API, as an operator makes them.
await seedUser(app, 'root', { admin: true, password: PASSWORD })
const root = (await seedToken(app, 'root', { scopes: ['admin'] })).token

await seedUser(app, 'alice', { password: PASSWORD })
const aliceReader = await seedToken(app, 'alice', { scopes: ['read:tokens'] })
const aliceRepository = (await seedToken(app, 'alice', { scopes: ['read:repository'] })).token
const aliceIntrospector = (await seedToken(app, 'alice', { scopes: ['introspect'] })).token
await seedUser(app, 'bob', { password: PASSWORD })
const bobReader = (await seedToken(app, 'bob', { scopes: ['read:tokens'] })).token

await seedUser(app, 'carol', { password: PASSWORD })
const carolReader = (await seedToken(app, 'carol', { scopes: ['read:tokens'] })).token

await seedUser(app, 'demoted', { admin: true, password: PASSWORD })
const demoted = (await seedToken(app, 'demoted', { scopes: ['admin'] })).token

async function patchUser (username: string, body: Record<string, unknown>): Promise<void> {
  const res = await app.inject({ method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: { authorization: bearer(root) }, payload: body })
  if (res.statusCode !== 200) throw new Error(`PATCH ${username} answered ${res.statusCode}: ${res.body}`)
}
await patchUser('carol', { suspended: true })
await patchUser('demoted', { admin: false })

const client = await seedApplication(app, ['introspect', 'read:repository'])
const publicClient = await seedApplication(app, ['read:repository'], { confidential: false })
const clientAuth = basic(client.clientId, client.clientSecret)

const newToken = { name: 'ci', scopes: ['read:tokens'] }

interface Row extends Omit<InjectOptions, 'headers'> {
  name: string
  url: string
  headers?: Record<string, string>
  expect: Expected
}

function formRequest (fields: Record<string, string>, headers: Record<string, string> = {}): Pick<Row, 'method' | 'payload' | 'headers'> {
  const body = form(fields)
  return { method: 'POST', payload: body.payload, headers: { ...body.headers, ...headers } }
}

const families: Array<{ family: string, rows: Row[] }> = [
  {
    family: 'REST bearer routes (GET /api/v1/tokens)',
    rows: [
      { name: 'no Authorization header is 401 TESSERA_TOKEN_REQUIRED with a bare Bearer challenge', method: 'GET', url: '/api/v1/tokens', expect: { status: 401, code: 'TESSERA_TOKEN_REQUIRED', challenge: BARE_BEARER } },
      { name: 'Basic credentials are 401 TESSERA_BEARER_SCHEME_REQUIRED with a bare Bearer challenge', method: 'GET', url: '/api/v1/tokens', headers: { authorization: basic('alice', PASSWORD) }, expect: { status: 401, code: 'TESSERA_BEARER_SCHEME_REQUIRED', challenge: BARE_BEARER } },
      { name: 'a garbled `Bearer a b` is 401 TESSERA_MALFORMED_AUTHORIZATION', method: 'GET', url: '/api/v1/tokens', headers: { authorization: 'Bearer a b' }, expect: { status: 401, code: 'TESSERA_MALFORMED_AUTHORIZATION', challenge: MALFORMED } },
      { name: 'an unknown well-formed token is 401 TESSERA_INVALID_TOKEN', method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(generateToken('tsr')) }, expect: { status: 401, code: 'TESSERA_INVALID_TOKEN', challenge: INVALID_TOKEN } },
      { name: 'a token that is not a Tessera token at all is 401 TESSERA_INVALID_TOKEN', method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer('not-a-token') }, expect: { status: 401, code: 'TESSERA_INVALID_TOKEN', challenge: INVALID_TOKEN } },
      { name: 'a token lacking read:tokens is 403 TESSERA_INSUFFICIENT_SCOPE naming the scope', method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(aliceRepository) }, expect: { status: 403, code: 'TESSERA_INSUFFICIENT_SCOPE', challenge: insufficientScope('read:tokens') } },
      { name: 'the token of a suspended owner is 401 TESSERA_INVALID_TOKEN', method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(carolReader) }, expect: { status: 401, code: 'TESSERA_INVALID_TOKEN', challenge: INVALID_TOKEN } },
      {
        name: 'a validation failure is 400 FST_ERR_VALIDATION listing the field in `errors`',
        method: 'GET',
        url: '/api/v1/tokens?limit=0',
        headers: { authorization: bearer(aliceReader.token) },
        expect: { status: 400, code: 'FST_ERR_VALIDATION', challenge: null, validation: true, detail: /^querystring\/limit / }
      },
      { name: 'another user\'s token id is 404 TESSERA_TOKEN_NOT_FOUND, never 403', method: 'GET', url: `/api/v1/tokens/${aliceReader.id}`, headers: { authorization: bearer(bobReader) }, expect: { status: 404, code: 'TESSERA_TOKEN_NOT_FOUND', challenge: null, detail: `you have no token with id ${aliceReader.id}` } }
    ]
  },
  {
    family: 'admin routes (GET /api/v1/admin/users)',
    rows: [
      { name: 'a non-admin user\'s token is 403 TESSERA_INSUFFICIENT_SCOPE naming admin', method: 'GET', url: '/api/v1/admin/users', headers: { authorization: bearer(aliceReader.token) }, expect: { status: 403, code: 'TESSERA_INSUFFICIENT_SCOPE', challenge: insufficientScope('admin') } },
      // What a token grants follows its owner's rights now: the demoted admin's token no longer grants admin.
      { name: 'the admin-scoped token of an admin demoted through the API is 403 TESSERA_INSUFFICIENT_SCOPE', method: 'GET', url: '/api/v1/admin/users', headers: { authorization: bearer(demoted) }, expect: { status: 403, code: 'TESSERA_INSUFFICIENT_SCOPE', challenge: 'Bearer realm="tessera", error="insufficient_scope", error_description="Requires the admin scope", scope="admin"', detail: 'the token lacks the admin scope' } },
      { name: 'no Authorization header is 401 TESSERA_TOKEN_REQUIRED', method: 'GET', url: '/api/v1/admin/users', expect: { status: 401, code: 'TESSERA_TOKEN_REQUIRED', challenge: BARE_BEARER } },
      { name: 'an unknown user is 404 TESSERA_USER_NOT_FOUND', method: 'GET', url: '/api/v1/admin/users/nobody', headers: { authorization: bearer(root) }, expect: { status: 404, code: 'TESSERA_USER_NOT_FOUND', challenge: null, detail: 'no user named "nobody"' } },
      { name: 'demoting the last administrator is 409 TESSERA_LAST_ADMINISTRATOR', method: 'PATCH', url: '/api/v1/admin/users/root', payload: { admin: false }, headers: { authorization: bearer(root) }, expect: { status: 409, code: 'TESSERA_LAST_ADMINISTRATOR', challenge: null } }
    ]
  },
  {
    family: 'Basic-password routes (POST /api/v1/users/{username}/tokens)',
    rows: [
      { name: 'no credentials are 401 TESSERA_PASSWORD_REQUIRED with a Basic challenge', method: 'POST', url: '/api/v1/users/alice/tokens', payload: newToken, expect: { status: 401, code: 'TESSERA_PASSWORD_REQUIRED', challenge: BASIC_CHALLENGE } },
      { name: 'a wrong password is 401 TESSERA_INVALID_PASSWORD with a Basic challenge', method: 'POST', url: '/api/v1/users/alice/tokens', payload: newToken, headers: { authorization: basic('alice', 'wrong password') }, expect: { status: 401, code: 'TESSERA_INVALID_PASSWORD', challenge: BASIC_CHALLENGE } },
      { name: 'another user\'s credentials are 403 TESSERA_CREDENTIALS_OF_ANOTHER_USER', method: 'POST', url: '/api/v1/users/alice/tokens', payload: newToken, headers: { authorization: basic('bob', PASSWORD) }, expect: { status: 403, code: 'TESSERA_CREDENTIALS_OF_ANOTHER_USER', challenge: null } },
      { name: 'the right password of a suspended account is 403 TESSERA_ACCOUNT_SUSPENDED', method: 'POST', url: '/api/v1/users/carol/tokens', payload: newToken, headers: { authorization: basic('carol', PASSWORD) }, expect: { status: 403, code: 'TESSERA_ACCOUNT_SUSPENDED', challenge: null } },
      { name: 'a bearer token is 403 TESSERA_TOKEN_CANNOT_MINT', method: 'POST', url: '/api/v1/users/alice/tokens', payload: newToken, headers: { authorization: bearer(aliceReader.token) }, expect: { status: 403, code: 'TESSERA_TOKEN_CANNOT_MINT', challenge: null } }
    ]
  },
  {
    family: 'session routes',
    rows: [
      { name: 'GET /api/v1/session without the cookie is 401 TESSERA_NOT_SIGNED_IN', method: 'GET', url: '/api/v1/session', expect: { status: 401, code: 'TESSERA_NOT_SIGNED_IN', challenge: BARE_BEARER } },
      { name: 'GET /api/v1/session with an unknown session cookie is 401 TESSERA_SESSION_ENDED', method: 'GET', url: '/api/v1/session', headers: { cookie: 'tessera_session=nothing-like-a-session' }, expect: { status: 401, code: 'TESSERA_SESSION_ENDED', challenge: BARE_BEARER } },
      { name: 'DELETE /api/v1/session with a cookie and no CSRF token is 403 TESSERA_CSRF_TOKEN_MISSING', method: 'DELETE', url: '/api/v1/session', headers: { cookie: 'tessera_session=nothing-like-a-session' }, expect: { status: 403, code: 'TESSERA_CSRF_TOKEN_MISSING', challenge: null } },
      { name: 'a wrong password at sign-in is 401 TESSERA_SIGN_IN_FAILED without a Basic challenge', method: 'POST', url: '/api/v1/session', payload: { username: 'alice', password: 'wrong password' }, expect: { status: 401, code: 'TESSERA_SIGN_IN_FAILED', challenge: BARE_BEARER } },
      { name: 'POST /api/v1/tokens without a session or a token is 401 TESSERA_TOKEN_REQUIRED', method: 'POST', url: '/api/v1/tokens', payload: newToken, expect: { status: 401, code: 'TESSERA_TOKEN_REQUIRED', challenge: BARE_BEARER } }
    ]
  },
  {
    family: 'OAuth introspection (POST /oauth/introspect)',
    rows: [
      { name: 'no client authentication is 401 invalid_client with a Basic challenge', url: '/oauth/introspect', ...formRequest({ token: aliceReader.token }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } },
      { name: 'a wrong client secret is 401 invalid_client with a Basic challenge', url: '/oauth/introspect', ...formRequest({ token: aliceReader.token }, { authorization: basic(client.clientId, 'wrong secret') }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } },
      { name: 'an unsupported Authorization scheme is 401 invalid_client with a Basic challenge', url: '/oauth/introspect', ...formRequest({ token: aliceReader.token }, { authorization: 'Token abc' }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } },
      { name: 'client credentials in the header and the form are 400 invalid_request', url: '/oauth/introspect', ...formRequest({ token: aliceReader.token, client_id: client.clientId, client_secret: client.clientSecret }, { authorization: clientAuth }), expect: { status: 400, error: 'invalid_request', challenge: null } },
      { name: 'a bearer without the introspect scope is 403 insufficient_scope', url: '/oauth/introspect', ...formRequest({ token: aliceRepository }, { authorization: bearer(aliceReader.token) }), expect: { status: 403, error: 'insufficient_scope', challenge: null } },
      { name: 'an unknown bearer is 401 invalid_token', url: '/oauth/introspect', ...formRequest({ token: aliceRepository }, { authorization: bearer(generateToken('tsr')) }), expect: { status: 401, error: 'invalid_token', challenge: INVALID_TOKEN } },
      { name: 'a bearer introspecting itself is 400 invalid_request', url: '/oauth/introspect', ...formRequest({ token: aliceIntrospector }, { authorization: bearer(aliceIntrospector) }), expect: { status: 400, error: 'invalid_request', challenge: null } },
      { name: 'a JSON body is 400 invalid_request', method: 'POST', url: '/oauth/introspect', payload: { token: aliceReader.token }, headers: { authorization: clientAuth }, expect: { status: 400, error: 'invalid_request', challenge: null, detail: 'the request body must be application/x-www-form-urlencoded' } },
      { name: 'a text/plain body is 415 invalid_request', method: 'POST', url: '/oauth/introspect', payload: `token=${aliceReader.token}`, headers: { authorization: clientAuth, 'content-type': 'text/plain' }, expect: { status: 415, error: 'invalid_request', challenge: null } },
      { name: 'a form without the token is 400 invalid_request naming the field', url: '/oauth/introspect', ...formRequest({ token_type_hint: 'access_token' }, { authorization: clientAuth }), expect: { status: 400, error: 'invalid_request', challenge: null, detail: /token/ } }
    ]
  },
  {
    family: 'OAuth token endpoint (POST /oauth/token)',
    rows: [
      { name: 'an unsupported grant_type is 400 unsupported_grant_type', url: '/oauth/token', ...formRequest({ grant_type: 'password' }, { authorization: clientAuth }), expect: { status: 400, error: 'unsupported_grant_type', challenge: null } },
      { name: 'a public client is 400 unauthorized_client', url: '/oauth/token', ...formRequest({ grant_type: 'client_credentials', client_id: publicClient.clientId }), expect: { status: 400, error: 'unauthorized_client', challenge: null } },
      { name: 'a scope the application does not hold is 400 invalid_scope', url: '/oauth/token', ...formRequest({ grant_type: 'client_credentials', scope: 'write:repository' }, { authorization: clientAuth }), expect: { status: 400, error: 'invalid_scope', challenge: null } },
      { name: 'a bearer token is 401 invalid_client with a Basic challenge', url: '/oauth/token', ...formRequest({ grant_type: 'client_credentials' }, { authorization: bearer(aliceReader.token) }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } },
      { name: 'a client_id without its secret is 401 invalid_client', url: '/oauth/token', ...formRequest({ grant_type: 'client_credentials', client_id: client.clientId }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } }
    ]
  },
  {
    family: 'OAuth revocation (POST /oauth/revoke)',
    rows: [
      { name: 'a bearer token revoking another token is 400 invalid_request', url: '/oauth/revoke', ...formRequest({ token: aliceRepository }, { authorization: bearer(aliceReader.token) }), expect: { status: 400, error: 'invalid_request', challenge: null } },
      { name: 'wrong client credentials are 401 invalid_client', url: '/oauth/revoke', ...formRequest({ token: aliceRepository }, { authorization: basic(client.clientId, 'wrong secret') }), expect: { status: 401, error: 'invalid_client', challenge: BASIC_CHALLENGE } }
    ]
  },
  {
    family: 'OAuth token info (GET /oauth/token/info)',
    rows: [
      { name: 'no token is 401 invalid_token with a bare Bearer challenge', method: 'GET', url: '/oauth/token/info', expect: { status: 401, error: 'invalid_token', challenge: BARE_BEARER } },
      { name: 'Basic credentials are 401 invalid_token with a bare Bearer challenge', method: 'GET', url: '/oauth/token/info', headers: { authorization: basic('alice', PASSWORD) }, expect: { status: 401, error: 'invalid_token', challenge: BARE_BEARER } },
      { name: 'a garbled header is 401 invalid_token', method: 'GET', url: '/oauth/token/info', headers: { authorization: 'Bearer a b' }, expect: { status: 401, error: 'invalid_token', challenge: MALFORMED } },
      { name: 'an unknown token is 401 invalid_token', method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(generateToken('tsr')) }, expect: { status: 401, error: 'invalid_token', challenge: INVALID_TOKEN } }
    ]
  },
  {
    family: 'forward authentication (GET /auth/verify)',
    rows: [
      { name: 'no token is 401 invalid_token with a bare Bearer challenge', method: 'GET', url: '/auth/verify', expect: { status: 401, error: 'invalid_token', challenge: BARE_BEARER } },
      { name: 'a garbled header is 401 invalid_token', method: 'GET', url: '/auth/verify', headers: { authorization: 'Bearer a b' }, expect: { status: 401, error: 'invalid_token', challenge: MALFORMED } },
      { name: 'an unknown token is 401 invalid_token', method: 'GET', url: '/auth/verify', headers: { authorization: bearer(generateToken('tsr')) }, expect: { status: 401, error: 'invalid_token', challenge: INVALID_TOKEN } },
      {
        name: 'a token without a required scope is 403 insufficient_scope naming every required scope',
        method: 'GET',
        url: '/auth/verify?scope=read:tokens%20write:repository',
        headers: { authorization: bearer(aliceReader.token) },
        expect: { status: 403, error: 'insufficient_scope', challenge: 'Bearer realm="tessera", error="insufficient_scope", error_description="The access token lacks a required scope", scope="read:tokens write:repository"' }
      },
      { name: 'a requirement that is not a scope token is 400 invalid_request', method: 'GET', url: '/auth/verify?scope=%22quoted%22', headers: { authorization: bearer(aliceReader.token) }, expect: { status: 400, error: 'invalid_request', challenge: null } },
      { name: 'the Envoy form without a token is 401 invalid_token too', method: 'POST', url: '/auth/verify/some/original/path', expect: { status: 401, error: 'invalid_token', challenge: BARE_BEARER } }
    ]
  },
  {
    family: 'framework errors',
    rows: [
      { name: 'an unknown route under /api is 404 TESSERA_ROUTE_NOT_FOUND', method: 'GET', url: '/api/v1/nothing-here', expect: { status: 404, code: 'TESSERA_ROUTE_NOT_FOUND', challenge: null, detail: 'no route GET /api/v1/nothing-here' } },
      { name: 'an unknown route under /oauth is 404 invalid_request', method: 'GET', url: '/oauth/nothing-here', expect: { status: 404, error: 'invalid_request', challenge: null, detail: 'no route GET /oauth/nothing-here' } },
      { name: 'an unknown route under /.well-known is 404 invalid_request', method: 'GET', url: '/.well-known/nothing-here', expect: { status: 404, error: 'invalid_request', challenge: null } },
      {
        name: 'a path parameter over 200 characters is 414 TESSERA_PATH_PARAMETER_TOO_LONG',
        method: 'GET',
        url: `/api/v1/admin/users/${'a'.repeat(201)}`,
        headers: { authorization: bearer(root) },
        expect: { status: 414, code: 'TESSERA_PATH_PARAMETER_TOO_LONG', challenge: null, detail: 'a path parameter is longer than 200 characters' }
      },
      {
        name: 'a path parameter over 200 characters is 414 even before authentication',
        method: 'DELETE',
        url: `/api/v1/users/alice/tokens/${'t'.repeat(201)}`,
        expect: { status: 414, code: 'TESSERA_PATH_PARAMETER_TOO_LONG', challenge: null }
      },
      {
        name: 'a percent-encoding that is not UTF-8 is 400 TESSERA_BAD_URL, without repeating the path',
        method: 'GET',
        url: '/api/v1/admin/users/%E0%A4%A',
        headers: { authorization: bearer(root) },
        expect: { status: 400, code: 'TESSERA_BAD_URL', challenge: null, detail: 'the URL is not valid: a percent-encoded part does not decode to UTF-8 text' }
      },
      { name: 'a percent-encoding that is not UTF-8 under /oauth is 400 invalid_request', method: 'GET', url: '/oauth/%E0%A4%A', expect: { status: 400, error: 'invalid_request', challenge: null } },
      { name: 'a percent-encoding that is not UTF-8 under /auth/verify is 400 invalid_request', method: 'GET', url: '/auth/verify/%FF', expect: { status: 400, error: 'invalid_request', challenge: null } },
      {
        name: 'a body that is not JSON is 400 FST_ERR_CTP_INVALID_JSON_BODY',
        method: 'POST',
        url: '/api/v1/users/bob/tokens',
        payload: '{"name":',
        headers: { 'content-type': 'application/json', authorization: basic('bob', PASSWORD) },
        expect: { status: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY', challenge: null }
      },
      {
        name: 'an empty JSON body is 400 FST_ERR_CTP_EMPTY_JSON_BODY',
        method: 'POST',
        url: '/api/v1/admin/users',
        payload: '',
        headers: { 'content-type': 'application/json', authorization: bearer(root) },
        expect: { status: 400, code: 'FST_ERR_CTP_EMPTY_JSON_BODY', challenge: null }
      },
      {
        name: 'a media type a REST route does not take is 415 FST_ERR_CTP_INVALID_MEDIA_TYPE',
        method: 'POST',
        url: '/api/v1/admin/users',
        payload: '<user><username>x</username></user>',
        headers: { 'content-type': 'application/xml', authorization: bearer(root) },
        expect: { status: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', challenge: null }
      },
      {
        name: 'a JSON body over BODY_LIMIT is 413 FST_ERR_CTP_BODY_TOO_LARGE',
        method: 'POST',
        url: '/api/v1/users/bob/tokens',
        payload: JSON.stringify({ name: 'x'.repeat(20_000), scopes: ['read:tokens'] }),
        headers: { 'content-type': 'application/json', authorization: basic('bob', PASSWORD) },
        expect: { status: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE', challenge: null }
      },
      {
        name: 'a form over BODY_LIMIT on an OAuth route is 413 invalid_request',
        url: '/oauth/introspect',
        ...formRequest({ token: 'x'.repeat(20_000) }, { authorization: clientAuth }),
        expect: { status: 413, error: 'invalid_request', challenge: null }
      }
    ]
  }
]

for (const { family, rows } of families) {
  t.test(family, async (t) => {
    for (const { name, expect, ...request } of rows) {
      t.test(name, async (t) => {
        assertErrorAnswer(t, await app.inject(request as InjectOptions), expect)
      })
    }
  })
}

t.test('with tight limits and a metrics token', async (t) => {
  const limited = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '2', RATE_LIMIT_INTROSPECT_PER_CLIENT: '2', METRICS_TOKEN: 'm'.repeat(24) })
  await seedUser(limited, 'dave', { password: PASSWORD })
  const introspector = await seedApplication(limited, ['introspect'])

  t.test('the third password attempt in the window is 429 TESSERA_RATE_LIMITED with Retry-After', async (t) => {
    const attempt = async (): Promise<LightMyRequestResponse> => await limited.inject({
      method: 'POST', url: '/api/v1/users/dave/tokens', payload: newToken, headers: { authorization: basic('dave', 'wrong password') }
    })
    assertErrorAnswer(t, await attempt(), { status: 401, code: 'TESSERA_INVALID_PASSWORD', challenge: BASIC_CHALLENGE })
    assertErrorAnswer(t, await attempt(), { status: 401, code: 'TESSERA_INVALID_PASSWORD', challenge: BASIC_CHALLENGE })
    const third = await attempt()
    assertErrorAnswer(t, third, { status: 429, code: 'TESSERA_RATE_LIMITED', challenge: null })
    t.match(third.headers['retry-after'], /^[1-9][0-9]*$/, 'Retry-After in whole seconds')
  })

  t.test('the third introspection in the window is 429 rate_limited with Retry-After', async (t) => {
    const introspect = async (): Promise<LightMyRequestResponse> => await limited.inject({
      url: '/oauth/introspect', ...formRequest({ token: generateToken('tsr') }, { authorization: basic(introspector.clientId, introspector.clientSecret) })
    } as InjectOptions)
    t.equal((await introspect()).statusCode, 200)
    t.equal((await introspect()).statusCode, 200)
    const over = await introspect()
    assertErrorAnswer(t, over, { status: 429, error: 'rate_limited', challenge: null })
    t.match(over.headers['retry-after'], /^[1-9][0-9]*$/, 'Retry-After in whole seconds')
  })

  t.test('GET /metrics without the METRICS_TOKEN bearer is 401 TESSERA_METRICS_TOKEN_REQUIRED with a bare Bearer challenge', async (t) => {
    assertErrorAnswer(t, await limited.inject({ method: 'GET', url: '/metrics' }), { status: 401, code: 'TESSERA_METRICS_TOKEN_REQUIRED', challenge: BARE_BEARER })
    assertErrorAnswer(t, await limited.inject({ method: 'GET', url: '/metrics', headers: { authorization: bearer('n'.repeat(24)) } }), { status: 401, code: 'TESSERA_METRICS_TOKEN_REQUIRED', challenge: BARE_BEARER })
  })
})

t.test('with the database gone, a 5xx carries no internal detail in either shape', async (t) => {
  const db = await createTestDatabase()
  const { app: orphan } = await buildWith(t, {}, { db })
  await seedUser(orphan, 'erin', { password: PASSWORD })
  const erin = (await seedToken(orphan, 'erin', { scopes: ['read:tokens'] })).token
  const erinClient = await seedApplication(orphan, ['introspect'])
  await db.close()

  const leaks = /pglite|postgres|econn|select |insert |connection|stack|\bat \w+ \(|\.ts:\d/i

  const rest = await orphan.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(erin) } })
  assertErrorAnswer(t, rest, { status: 503, code: 'TESSERA_DATABASE_UNAVAILABLE', challenge: null, detail: DATABASE_DETAIL })
  t.notMatch(rest.body, leaks, 'nothing from the driver or the stack')

  const password = await orphan.inject({ method: 'POST', url: '/api/v1/users/erin/tokens', payload: newToken, headers: { authorization: basic('erin', PASSWORD) } })
  assertErrorAnswer(t, password, { status: 503, code: 'TESSERA_DATABASE_UNAVAILABLE', challenge: null, detail: DATABASE_DETAIL })
  t.notMatch(password.body, leaks)

  const oauth = await orphan.inject({ url: '/oauth/introspect', ...formRequest({ token: erin }, { authorization: basic(erinClient.clientId, erinClient.clientSecret) }) } as InjectOptions)
  assertErrorAnswer(t, oauth, { status: 503, error: 'temporarily_unavailable', challenge: null, detail: DATABASE_DETAIL })
  t.notMatch(oauth.body, leaks)
})

t.test('every code in src/errors.ts is documented in README.md\'s errors table', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Errors'), readme.indexOf('\n## ', readme.indexOf('\n## Errors') + 1))
  const documented = new Set([...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((match) => match[1]))
  t.ok(documented.size > 0, 'the README has an errors table')
  const codes = Object.values(Errors).map((Named) => new (Named as new (...args: string[]) => Error & { code: string })('a', 'b').code)
  t.equal(new Set(codes).size, codes.length, 'every code is distinct')
  for (const code of codes) t.ok(documented.has(code), `${code} appears as \`${code}\` in README.md's errors table`)
  for (const code of documented) t.ok(codes.includes(code ?? ''), `${code ?? ''} in the README is a code src/errors.ts defines`)
})
