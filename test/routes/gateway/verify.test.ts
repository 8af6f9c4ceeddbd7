import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import tessera from '../../../src/app.js'
import { loadConfig } from '../../../src/config.js'
import { serverOptions } from '../../../src/options.js'
import { ensureInternalApplication } from '../../../src/services/applications.js'
import { AccessToken } from '../../../src/entities/access-token.js'
import { Application } from '../../../src/entities/application.js'
import { expirationHeader } from '../../../src/http/expiration.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { generateToken } from '../../../src/services/token-format.js'
import { issueToken } from '../../../src/services/tokens.js'
import { basic, bearer, build, createTestDatabase, seedApplication, seedToken, seedUser, TEST_ENV } from '../../helper.js'

const BARE_CHALLENGE = 'Bearer realm="tessera"'
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"'
const IDENTITY_HEADERS = ['x-auth-request-user', 'x-auth-request-subject', 'x-auth-request-scopes', 'x-auth-request-client-id', 'x-auth-request-token-id', 'tessera-token-expiration']

const app = await build(t)
const connection = app.orm.em.getConnection()

interface VerifyOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'
  url?: string
  headers?: Record<string, string>
}

async function verify (authorization: string | undefined, query = '', options: VerifyOptions = {}): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: options.method ?? 'GET',
    url: `${options.url ?? '/auth/verify'}${query}`,
    headers: { ...(authorization !== undefined ? { authorization } : {}), ...options.headers }
  })
}

/** The identity headers of a response, and only those. */
function identity (res: LightMyRequestResponse): Record<string, unknown> {
  return Object.fromEntries(IDENTITY_HEADERS.filter((name) => name in res.headers).map((name) => [name, res.headers[name]]))
}

function assertUnauthorized (t: Test, res: LightMyRequestResponse, challenge: string): void {
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], challenge)
  t.equal(res.headers['cache-control'], 'no-store')
  t.strictSame(identity(res), {}, 'no identity headers')
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), ['error', 'error_description'])
  t.equal(body.error, 'invalid_token')
}

function assertInsufficientScope (t: Test, res: LightMyRequestResponse, challenge: string, description: string): void {
  t.equal(res.statusCode, 403)
  t.equal(res.headers['www-authenticate'], challenge)
  t.equal(res.headers['cache-control'], 'no-store')
  t.strictSame(identity(res), {}, 'no identity headers')
  t.strictSame(res.json(), { error: 'insufficient_scope', error_description: description })
}

function assertInvalidRequest (t: Test, res: LightMyRequestResponse, description: RegExp): void {
  t.equal(res.statusCode, 400)
  t.strictSame(identity(res), {}, 'no identity headers')
  const body = res.json()
  t.equal(body.error, 'invalid_request')
  t.match(body.error_description, description)
}

/** A personal token with the given scopes, issued to a new user; returns what the assertions need. */
async function personalToken (username: string, input: { scopes?: string[], audience?: string[], expires_in?: number } = {}): Promise<{ token: string, id: string, userId: string }> {
  const owner = await seedUser(app, username)
  const { token, id } = await seedToken(app, username, { scopes: input.scopes ?? ['read:repository'], ...input })
  return { token, id, userId: owner.id }
}

async function expiresAtOf (id: string): Promise<Date> {
  const row = await app.orm.em.fork().findOneOrFail(AccessToken, id)
  if (row.expiresAt == null) throw new Error('token has no expiry')
  return row.expiresAt
}

t.test('an active personal token is 200 with its identity in oauth2-proxy headers and its expiry as GitHub writes it', async (t) => {
  const { token, id, userId } = await personalToken('verify-alice', { scopes: ['write:repository', 'read:tokens'], expires_in: 3600 })
  const res = await verify(bearer(token))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.strictSame(identity(res), {
    'x-auth-request-user': 'verify-alice',
    'x-auth-request-subject': userId,
    'x-auth-request-scopes': 'write:repository read:tokens read:repository',
    'x-auth-request-client-id': 'internal',
    'x-auth-request-token-id': id,
    'tessera-token-expiration': expirationHeader((await expiresAtOf(id)).getTime())
  })
  t.match(res.headers['tessera-token-expiration'], /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/)
  t.equal(res.headers['www-authenticate'], undefined)
  t.strictSame(res.json(), { active: true })
})

t.test('the expiry header is the UTC second of expiry, in GitHub\'s format', async (t) => {
  t.equal(expirationHeader(Date.UTC(2026, 0, 31, 8, 0, 0, 999)), '2026-01-31 08:00:00 UTC')
  t.equal(expirationHeader(Date.UTC(2027, 11, 5, 23, 59, 7)), '2027-12-05 23:59:07 UTC')
})

t.test('an application\'s own token names the client as user and subject', async (t) => {
  const client = await seedApplication(app, ['read:repository'])
  const { token, id } = await app.orm.em.fork().transactional(async (tx) => {
    const application = await tx.findOneOrFail(Application, client.id)
    const issued = await issueToken(tx, app.services.issuer, {
      owner: null,
      application,
      input: { name: 'machine', scopes: ['read:repository'], expires_in: 600 },
      actor: SYSTEM_ACTOR
    })
    return { token: issued.plaintext, id: issued.token.id }
  })
  const res = await verify(bearer(token))
  t.equal(res.statusCode, 200)
  t.strictSame(identity(res), {
    'x-auth-request-user': client.clientId,
    'x-auth-request-subject': client.clientId,
    'x-auth-request-scopes': 'read:repository',
    'x-auth-request-client-id': client.clientId,
    'x-auth-request-token-id': id,
    'tessera-token-expiration': expirationHeader((await expiresAtOf(id)).getTime())
  })
})

t.test('a token that never expires has no expiry header', async (t) => {
  const { token, id } = await personalToken('verify-forever')
  // The default configuration caps lifetimes; a token from before the cap has no expiry.
  await connection.execute('update access_tokens set expires_at = null where id = ?', [id], 'run')
  app.services.cache.invalidateToken(id)
  const res = await verify(bearer(token))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-auth-request-token-id'], id)
  t.notOk('tessera-token-expiration' in res.headers)
})

t.test('no header of any answer carries the secret or its digest', async (t) => {
  const { token } = await personalToken('verify-secret', { scopes: ['read:repository'] })
  const digest = app.services.resolver.digest(token)
  const answers = [
    await verify(bearer(token)),
    await verify(bearer(token), '', { method: 'HEAD' }),
    await verify(bearer(token), '?scope=write:repository'),
    await verify(bearer(token), '?audience=elsewhere&scope=nope'),
    await verify(bearer(`${token}x`))
  ]
  t.strictSame(answers.map((res) => res.statusCode), [200, 200, 403, 403, 401])
  for (const res of answers) {
    const headers = JSON.stringify(res.headers)
    t.notOk(headers.includes(token.slice(4)), `no secret in the headers of the ${res.statusCode}`)
    t.notOk(headers.includes(digest), `no digest in the headers of the ${res.statusCode}`)
    t.notOk(res.body.includes(token.slice(4)), `no secret in the body of the ${res.statusCode}`)
  }
})

t.test('without an Authorization header it is 401 with a bare Bearer challenge', async (t) => {
  assertUnauthorized(t, await verify(undefined), BARE_CHALLENGE)
})

t.test('an unknown token is 401 with error="invalid_token"', async (t) => {
  assertUnauthorized(t, await verify(bearer(generateToken('tsr'))), INVALID_TOKEN_CHALLENGE)
})

t.test('a string that is not a token is 401 with error="invalid_token"', async (t) => {
  assertUnauthorized(t, await verify(bearer('not-a-token')), INVALID_TOKEN_CHALLENGE)
})

t.test('a garbled Bearer header is 401 invalid_token naming the header', async (t) => {
  assertUnauthorized(t, await verify('Bearer one two'), 'Bearer realm="tessera", error="invalid_token", error_description="The Authorization header is malformed"')
})

t.test('Basic credentials are 401 with a bare Bearer challenge', async (t) => {
  await seedUser(app, 'verify-basic')
  assertUnauthorized(t, await verify(basic('verify-basic', 'correct horse battery')), BARE_CHALLENGE)
})

t.test('an expired token is 401', async (t) => {
  const { token, id } = await personalToken('verify-expired')
  t.equal((await verify(bearer(token))).statusCode, 200)
  await connection.execute('update access_tokens set expires_at = now() - interval \'1 second\' where id = ?', [id], 'run')
  app.services.cache.invalidateToken(id)
  assertUnauthorized(t, await verify(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('a token invalidated by its owner is 401 at once, though it was cached', async (t) => {
  const { token, id } = await personalToken('verify-revoked')
  const { token: manager } = await seedToken(app, 'verify-revoked', { scopes: ['write:tokens'] })
  t.equal((await verify(bearer(token))).statusCode, 200)
  t.equal((await verify(bearer(token))).statusCode, 200, 'answered from the cache')
  const invalidated = await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/invalidate`, headers: { authorization: bearer(manager) } })
  t.equal(invalidated.statusCode, 200)
  assertUnauthorized(t, await verify(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('a token whose owner an administrator suspends is 401 at once, though it was cached', async (t) => {
  await seedUser(app, 'verify-admin', { admin: true })
  const { token: adminToken } = await seedToken(app, 'verify-admin', { scopes: ['admin'] })
  const { token } = await personalToken('verify-suspended')
  t.equal((await verify(bearer(token))).statusCode, 200)
  const suspended = await app.inject({ method: 'PATCH', url: '/api/v1/admin/users/verify-suspended', headers: { authorization: bearer(adminToken) }, payload: { suspended: true } })
  t.equal(suspended.statusCode, 200)
  assertUnauthorized(t, await verify(bearer(token)), INVALID_TOKEN_CHALLENGE)
})

t.test('a required scope the token holds passes', async (t) => {
  const { token } = await personalToken('verify-scope-held', { scopes: ['read:repository', 'read:tokens'] })
  t.equal((await verify(bearer(token), '?scope=read:repository')).statusCode, 200)
})

t.test('write:X satisfies a required read:X, as the scope is implied', async (t) => {
  const { token } = await personalToken('verify-implied', { scopes: ['write:repository'] })
  const res = await verify(bearer(token), '?scope=read:repository')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-auth-request-scopes'], 'write:repository read:repository')
})

t.test('a required scope the token lacks is 403 insufficient_scope naming the required scopes', async (t) => {
  const { token } = await personalToken('verify-scope-lacking', { scopes: ['read:repository'] })
  assertInsufficientScope(t, await verify(bearer(token), '?scope=write:repository'),
    'Bearer realm="tessera", error="insufficient_scope", error_description="The access token lacks a required scope", scope="write:repository"',
    'the access token lacks the required scope: write:repository')
})

t.test('every listed scope is required, whether repeated or space-separated', async (t) => {
  const { token } = await personalToken('verify-several', { scopes: ['read:repository', 'read:tokens'] })
  t.equal((await verify(bearer(token), '?scope=read:repository&scope=read:tokens')).statusCode, 200, 'repeated, all held')
  t.equal((await verify(bearer(token), '?scope=read:repository%20read:tokens')).statusCode, 200, 'space-separated, all held')
  t.equal((await verify(bearer(token), '?scope=read:repository+read:tokens')).statusCode, 200, 'plus as space, all held')
  const challenge = 'Bearer realm="tessera", error="insufficient_scope", error_description="The access token lacks a required scope", scope="read:repository write:tokens read:tokens"'
  assertInsufficientScope(t, await verify(bearer(token), '?scope=read:repository&scope=write:tokens&scope=read:tokens'), challenge,
    'the access token lacks the required scope: write:tokens')
  assertInsufficientScope(t, await verify(bearer(token), '?scope=read:repository%20write:tokens%20read:tokens'), challenge,
    'the access token lacks the required scope: write:tokens')
})

t.test('an unrestricted token passes any required audience', async (t) => {
  const { token } = await personalToken('verify-anywhere')
  t.equal((await verify(bearer(token), '?audience=https://api.example.com')).statusCode, 200)
})

t.test('a token restricted to audiences passes only for one it lists', async (t) => {
  const { token } = await personalToken('verify-restricted', { audience: ['https://api.example.com', 'billing'] })
  t.equal((await verify(bearer(token), '?audience=billing')).statusCode, 200)
  t.equal((await verify(bearer(token), '?audience=https%3A%2F%2Fapi.example.com&scope=read:repository')).statusCode, 200)
  assertInsufficientScope(t, await verify(bearer(token), '?audience=reports'),
    'Bearer realm="tessera", error="insufficient_scope", error_description="The access token is not valid for the required audience"',
    'the access token is not valid for the required audience')
})

t.test('an invalid token is 401 even when requirements are given', async (t) => {
  assertUnauthorized(t, await verify(bearer(generateToken('tsr')), '?scope=read:repository&audience=billing'), INVALID_TOKEN_CHALLENGE)
})

t.test('bad requirements are 400 invalid_request, never a 500', async (t) => {
  const { token } = await personalToken('verify-bad-query')
  const many = Array.from({ length: 60 }, (_, i) => `s${i}`)
  assertInvalidRequest(t, await verify(bearer(token), `?${many.map((scope) => `scope=${scope}`).join('&')}`), /querystring\/scope must NOT have more than 20 items/)
  assertInvalidRequest(t, await verify(bearer(token), `?scope=${many.join('%20')}`), /^at most 20 scopes may be required$/)
  assertInvalidRequest(t, await verify(bearer(token), `?scope=${'a'.repeat(129)}`), /^scope must be scope tokens/)
  assertInvalidRequest(t, await verify(bearer(token), `?scope=${'a'.repeat(2049)}`), /querystring\/scope\/0 must NOT have more than 2048 characters/)
  assertInvalidRequest(t, await verify(bearer(token), '?scope=read%22repository'), /^scope must be scope tokens/)
  assertInvalidRequest(t, await verify(bearer(token), '?scope=read%0D%0Aset-cookie:x'), /^scope must be scope tokens/)
  assertInvalidRequest(t, await verify(bearer(token), '?scope=%20%20'), /^scope must name at least one scope$/)
  assertInvalidRequest(t, await verify(bearer(token), '?scope='), /querystring\/scope\/0 must NOT have fewer than 1 characters/)
  assertInvalidRequest(t, await verify(bearer(token), `?audience=${'a'.repeat(256)}`), /querystring\/audience must NOT have more than 255 characters/)
  assertInvalidRequest(t, await verify(bearer(token), '?audience=a%0D%0Ab'), /querystring\/audience must match pattern/)
  assertInvalidRequest(t, await verify(bearer(token), '?audience=a&audience=b'), /querystring\/audience must be string/)
  assertInvalidRequest(t, await verify(bearer(token), '?scopes=admin'), /querystring must NOT have additional properties \(scopes\)/)
})

t.test('HEAD answers as GET does, without a body', async (t) => {
  const { token, id } = await personalToken('verify-head', { expires_in: 600 })
  const ok = await verify(bearer(token), '?scope=read:repository', { method: 'HEAD' })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers['x-auth-request-token-id'], id)
  t.equal(ok.headers['x-auth-request-user'], 'verify-head')
  t.equal(ok.headers['tessera-token-expiration'], expirationHeader((await expiresAtOf(id)).getTime()))
  t.equal(ok.body, '')
  const denied = await verify(bearer(token), '?scope=write:repository', { method: 'HEAD' })
  t.equal(denied.statusCode, 403)
  t.match(denied.headers['www-authenticate'], /error="insufficient_scope"/)
  t.equal(denied.body, '')
  const missing = await verify(undefined, '', { method: 'HEAD' })
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], BARE_CHALLENGE)
  t.equal(missing.body, '')
})

t.test('a check forwarded with the client\'s method and Content-Type but no body is answered (Envoy, nginx)', async (t) => {
  const { token, id } = await personalToken('verify-methods')
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const) {
    const res = await verify(bearer(token), '?scope=read:repository', { method, headers: { 'content-type': 'application/json', 'content-length': '0' } })
    t.equal(res.statusCode, 200, `${method} is answered`)
    t.equal(res.headers['x-auth-request-token-id'], id)
  }
  const withBody = await app.inject({ method: 'POST', url: '/auth/verify', headers: { authorization: bearer(token), 'content-type': 'application/json' }, payload: '{"not": "read"' })
  t.equal(withBody.statusCode, 200, 'a body is ignored, never parsed')
  assertInsufficientScope(t, await verify(bearer(token), '?scope=admin', { method: 'DELETE' }),
    'Bearer realm="tessera", error="insufficient_scope", error_description="The access token lacks a required scope", scope="admin"',
    'the access token lacks the required scope: admin')
})

t.test('under Envoy\'s path_prefix the original path and query are ignored and requirements come from headers', async (t) => {
  const { token, id } = await personalToken('verify-envoy', { scopes: ['write:repository'], audience: ['api'] })
  const plain = await verify(bearer(token), '?scope=admin&audience=elsewhere&page=2', { method: 'POST', url: '/auth/verify/v1/repositories/42' })
  t.equal(plain.statusCode, 200, 'the client\'s query is not a requirement')
  t.equal(plain.headers['x-auth-request-token-id'], id)
  const head = await verify(bearer(token), '', { method: 'HEAD', url: '/auth/verify/v1/repositories' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['x-auth-request-user'], 'verify-envoy')
  const met = await verify(bearer(token), '', { url: '/auth/verify/v1', headers: { 'tessera-require-scope': 'read:repository write:repository', 'tessera-require-audience': 'api' } })
  t.equal(met.statusCode, 200)
  assertInsufficientScope(t, await verify(bearer(token), '', { method: 'PUT', url: '/auth/verify/v1', headers: { 'tessera-require-scope': 'read:repository, admin' } }),
    'Bearer realm="tessera", error="insufficient_scope", error_description="The access token lacks a required scope", scope="read:repository admin"',
    'the access token lacks the required scope: admin')
  assertInsufficientScope(t, await verify(bearer(token), '', { url: '/auth/verify/v1', headers: { 'tessera-require-audience': 'billing' } }),
    'Bearer realm="tessera", error="insufficient_scope", error_description="The access token is not valid for the required audience"',
    'the access token is not valid for the required audience')
  const long = await verify(bearer(token), `?q=${'y'.repeat(500)}`, { url: `/auth/verify/${'segment/'.repeat(400)}end` })
  t.equal(long.statusCode, 200, 'an original path far longer than a route parameter may be is still checked')
  assertUnauthorized(t, await verify(undefined, '', { method: 'PATCH', url: '/auth/verify/v1' }), BARE_CHALLENGE)
  assertInvalidRequest(t, await verify(bearer(token), '', { url: '/auth/verify/v1', headers: { 'tessera-require-scope': 'a"b' } }), /^scope must be scope tokens/)
})

t.test('usage is recorded for the holder\'s address: the first X-Forwarded-For entry behind a trusted proxy', async (t) => {
  async function lastUsedIp (instance: FastifyInstance, id: string): Promise<string | null | undefined> {
    await instance.usage.flush()
    return (await instance.orm.em.fork().findOneOrFail(AccessToken, id)).lastUsedIp
  }
  const forwarded = { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' }

  const direct = await personalToken('verify-usage-direct')
  t.equal((await verify(bearer(direct.token), '', { headers: forwarded })).statusCode, 200)
  t.equal(await lastUsedIp(app, direct.id), '127.0.0.1', 'without TRUST_PROXY, the peer address')

  const proxied = await build(t, { TRUST_PROXY: 'true' })
  await seedUser(proxied, 'verify-usage-proxied')
  const { token, id } = await seedToken(proxied, 'verify-usage-proxied', { scopes: ['read:repository'] })
  const res = await proxied.inject({ method: 'GET', url: '/auth/verify?scope=write:repository', headers: { authorization: bearer(token), ...forwarded } })
  t.equal(res.statusCode, 403, 'a valid token with too little scope was still used')
  t.equal(await lastUsedIp(proxied, id), '203.0.113.7')
})

t.test('OpenAPI documents GET /auth/verify under the gateway tag, and only it', async (t) => {
  const document = (await app.inject({ method: 'GET', url: '/documentation/json' })).json()
  const operation = document.paths['/auth/verify'].get
  t.strictSame(operation.tags, ['gateway'])
  t.strictSame(operation.security, [{ bearerAuth: [] }])
  t.strictSame(operation.parameters.map((parameter: { name: string, in: string }) => `${parameter.in}:${parameter.name}`).sort(), ['query:audience', 'query:scope'])
  t.strictSame(Object.keys(operation.responses).sort(), ['200', '400', '401', '403', '503'])
  t.strictSame(Object.keys(document.paths['/auth/verify']), ['get'])
  t.strictSame(Object.keys(document.paths).filter((path) => path.startsWith('/auth/verify/')), [])
  t.ok(document.tags.some((tag: { name: string }) => tag.name === 'gateway'), 'the tag is declared')
})

t.test('checks log nothing at info level, so a gateway\'s traffic does not flood the log', async (t) => {
  const lines: Array<{ msg?: string, req?: { url?: string }, reqId?: string }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    }
  })
  const db = await createTestDatabase()
  const config = loadConfig({ ...TEST_ENV, LOG_LEVEL: 'info', ...(db.embedded ? {} : { DATABASE_URL: db.url }) })
  const logged = Fastify(serverOptions(config, { level: 'info', stream }))
  t.teardown(async () => {
    await logged.close()
    await db.close()
  })
  await logged.register(tessera, { config, databaseUrl: db.url })
  await logged.ready()
  await ensureInternalApplication(logged.orm.em.fork())
  await seedUser(logged, 'verify-quiet')
  const { token } = await seedToken(logged, 'verify-quiet', { scopes: ['read:repository'] })

  lines.length = 0
  const answers = [
    await logged.inject({ method: 'GET', url: '/auth/verify', headers: { authorization: bearer(token) } }),
    await logged.inject({ method: 'GET', url: '/auth/verify?scope=admin', headers: { authorization: bearer(token) } }),
    await logged.inject({ method: 'GET', url: '/auth/verify' }),
    await logged.inject({ method: 'POST', url: '/auth/verify/v1/x', headers: { authorization: bearer(token) } })
  ]
  t.strictSame(answers.map((res) => res.statusCode), [200, 403, 401, 200])
  t.strictSame(lines, [], 'no line for checks that pass or fail')

  const control = await logged.inject({ method: 'GET', url: '/api/v1/tokens' })
  t.equal(control.statusCode, 401)
  t.ok(lines.some((line) => line.msg === 'incoming request'), 'other routes still log at info (the logger works)')
})
