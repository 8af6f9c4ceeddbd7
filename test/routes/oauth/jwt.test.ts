import t from 'tap'
import * as oauth from 'oauth4webapi'
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { bearer, build, freePort, introspection, seedApplication, seedUser, seedToken } from '../../helper.js'
import { createApplication } from '../../../src/services/applications.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'

/**
 * JWT access tokens (RFC 9068) and signed introspection answers (RFC 9701), verified as a
 * resource server would: jose against the JWKS fetched from a listening server.
 */

const port = await freePort()
const issuerUrl = `http://127.0.0.1:${port}`
const app = await build(t, { PUBLIC_URL: issuerUrl })
await app.listen({ host: '127.0.0.1', port })

const issuer = new URL(issuerUrl)
const insecure = { [oauth.allowInsecureRequests]: true }

const jwtService = await app.orm.em.fork().transactional(async (tx) => await createApplication(tx, {
  hasher: app.services.hasher,
  scopes: app.config.scopes,
  tokenPrefix: app.config.TOKEN_PREFIX
}, { name: 'jwt-service', scopes: ['introspect', 'write:repository'], tokenFormat: 'jwt' }, SYSTEM_ACTOR))
const service = { clientId: jwtService.application.clientId, clientSecret: jwtService.clientSecret ?? '' }
const serviceClient: oauth.Client = { client_id: service.clientId }
const resourceServer = await seedApplication(app, ['introspect'])
const resourceServerClient: oauth.Client = { client_id: resourceServer.clientId }
const rsAuth = oauth.ClientSecretBasic(resourceServer.clientSecret)

const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))

async function jwtToken (scope = 'write:repository'): Promise<string> {
  const granted = await oauth.processClientCredentialsResponse(as, serviceClient,
    await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretBasic(service.clientSecret), { scope }, insecure))
  return granted.access_token
}

async function introspect (token: string): Promise<Record<string, unknown>> {
  const answer = await oauth.processIntrospectionResponse(as, resourceServerClient,
    await oauth.introspectionRequest(as, resourceServerClient, rsAuth, token, insecure))
  return { ...answer }
}

function basicAuth (clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`
}

t.test('discovery names the JWKS and the algorithm of signed introspection answers', async (t) => {
  t.equal(as.jwks_uri, `${issuerUrl}/.well-known/jwks.json`)
  t.strictSame(as.introspection_signing_alg_values_supported, ['ES256'])
  const response = await fetch(as.jwks_uri as string)
  t.equal(response.status, 200)
  t.equal(response.headers.get('cache-control'), 'public, max-age=60')
  const jwks = await response.json() as { keys: Array<Record<string, unknown>> }
  t.equal(jwks.keys.length, 1)
  t.match(jwks.keys[0], { kty: 'EC', crv: 'P-256', kid: app.services.keys.activeKey().kid, alg: 'ES256', use: 'sig', x: String, y: String })
  t.notOk('d' in (jwks.keys[0] ?? {}), 'never the private part')
})

t.test('an application configured for JWTs gets an RFC 9068 access token that verifies against the JWKS', async (t) => {
  const token = await jwtToken()
  const jwks = createRemoteJWKSet(new URL(as.jwks_uri as string))
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { typ: 'at+jwt', issuer: issuerUrl, audience: issuerUrl, algorithms: ['ES256'] })
  t.strictSame(Object.keys(protectedHeader).sort(), ['alg', 'kid', 'typ'])
  t.equal(protectedHeader.kid, app.services.keys.activeKey().kid)
  t.match(payload, { iss: issuerUrl, sub: service.clientId, aud: issuerUrl, client_id: service.clientId, scope: 'write:repository', jti: String })
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600)

  const answer = await introspect(token)
  t.match(answer, { active: true, client_id: service.clientId, sub: service.clientId, scope: 'write:repository read:repository', iss: issuerUrl, jti: payload.jti, exp: payload.exp, iat: payload.iat })

  const row = await app.orm.em.getConnection().execute<Array<{ last_eight: string, digest: string }>>('select last_eight, digest from access_tokens where id = ?', [payload.jti])
  t.equal(row[0]?.last_eight, token.slice(-8), 'the row keeps the JWT\'s last eight characters')
  t.equal(row[0]?.digest, app.services.digester.digest(token), 'and its digest, like any token')
})

t.test('a JWT seen once is answered from the cache by its digest, like an opaque token', async (t) => {
  const token = await jwtToken()
  const { cache } = app.services
  t.match(await introspect(token), { active: true })
  const hits = cache.stats.hits
  const misses = cache.stats.misses
  t.match(await introspect(token), { active: true })
  t.ok(cache.stats.hits > hits, 'a cache hit')
  t.equal(cache.stats.misses, misses, 'and no miss: the database was not asked again')
})

t.test('an opaque application still gets opaque tokens', async (t) => {
  const opaque = await seedApplication(app, ['write:repository'])
  const client: oauth.Client = { client_id: opaque.clientId }
  const granted = await oauth.processClientCredentialsResponse(as, client,
    await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(opaque.clientSecret), {}, insecure))
  t.match(granted.access_token, /^tsr_[0-9A-Za-z]+$/)
})

t.test('a JWT access token works as a bearer token: token info, forward auth, introspection by bearer', async (t) => {
  const token = await jwtToken('introspect write:repository')
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
  t.equal(info.statusCode, 200)
  t.match(info.json(), { resource_owner_id: null, application: { uid: service.clientId } })

  const verified = await app.inject({ method: 'GET', url: '/auth/verify?scope=read:repository', headers: { authorization: bearer(token) } })
  t.equal(verified.statusCode, 200)
  t.equal(verified.headers['x-auth-request-client-id'], service.clientId)

  await seedUser(app, 'someone')
  const personal = await seedToken(app, 'someone')
  const asBearer = await introspection(app, personal.token, bearer(token))
  t.match(asBearer.json(), { active: true, username: 'someone' })

  const itself = await introspection(app, token, bearer(token))
  t.equal(itself.statusCode, 400, 'a JWT cannot introspect itself either (RFC 7662 §2.1)')
})

t.test('a revoked JWT introspects as inactive even though its signature and exp are still good', async (t) => {
  const token = await jwtToken()
  t.match(await introspect(token), { active: true })
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, serviceClient, oauth.ClientSecretBasic(service.clientSecret), token, insecure))
  t.strictSame(await introspect(token), { active: false })
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
  t.equal(info.statusCode, 401)
  const verified = await app.inject({ method: 'GET', url: '/auth/verify', headers: { authorization: bearer(token) } })
  t.equal(verified.statusCode, 401)
  // Offline verification cannot see revocation: that is what introspection is for.
  await t.resolves(jwtVerify(token, createRemoteJWKSet(new URL(as.jwks_uri as string)), { typ: 'at+jwt', issuer: issuerUrl }))
})

t.test('forged, altered or foreign JWTs introspect as inactive', async (t) => {
  const token = await jwtToken()
  const [header = '', payload = '', signature = ''] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>
  const altered = `${header}.${Buffer.from(JSON.stringify({ ...claims, scope: 'admin' })).toString('base64url')}.${signature}`
  t.strictSame(await introspect(altered), { active: false })
  t.strictSame(await introspect(`${header}.${payload}.${'A'.repeat(86)}`), { active: false })
  const unknownKid = `${Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'nope' })).toString('base64url')}.${payload}.${signature}`
  t.strictSame(await introspect(unknownKid), { active: false })
})

t.test('RFC 9701: Accept: application/token-introspection+jwt gets a signed answer addressed to the caller', async (t) => {
  const token = await jwtToken()
  const jwks = createRemoteJWKSet(new URL(as.jwks_uri as string))
  const response = await fetch(as.introspection_endpoint as string, {
    method: 'POST',
    headers: { authorization: basicAuth(resourceServer.clientId, resourceServer.clientSecret), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' },
    body: new URLSearchParams({ token })
  })
  t.equal(response.status, 200)
  t.equal(response.headers.get('content-type'), 'application/token-introspection+jwt')
  t.equal(response.headers.get('cache-control'), 'no-store')
  const signed = await response.text()
  const { payload, protectedHeader } = await jwtVerify(signed, jwks, { typ: 'token-introspection+jwt', issuer: issuerUrl, audience: resourceServer.clientId, algorithms: ['ES256'] })
  t.equal(protectedHeader.kid, app.services.keys.activeKey().kid)
  t.type(payload.iat, 'number')
  t.strictSame(payload.token_introspection, await introspect(token), 'the same answer as the JSON one')

  t.test('an inactive token: a signed {"active": false}', async (t) => {
    const inactive = await fetch(as.introspection_endpoint as string, {
      method: 'POST',
      headers: { authorization: basicAuth(resourceServer.clientId, resourceServer.clientSecret), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' },
      body: new URLSearchParams({ token: 'tsr_nonsense' })
    })
    const { payload } = await jwtVerify(await inactive.text(), jwks, { typ: 'token-introspection+jwt', issuer: issuerUrl, audience: resourceServer.clientId })
    t.strictSame(payload.token_introspection, { active: false })
  })

  t.test('a caller authenticated by a bearer token is addressed by that token\'s client_id', async (t) => {
    const callerToken = await jwtToken('introspect')
    const asBearer = await app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      payload: new URLSearchParams({ token }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt', authorization: bearer(callerToken) }
    })
    const { payload } = await jwtVerify(asBearer.body, jwks, { typ: 'token-introspection+jwt', issuer: issuerUrl, audience: service.clientId })
    t.match(payload.token_introspection, { active: true })
  })

  t.test('oauth4webapi accepts the signed answer', async (t) => {
    const answer = await oauth.processIntrospectionResponse(as, resourceServerClient,
      await oauth.introspectionRequest(as, resourceServerClient, rsAuth, token, { requestJwtResponse: true, ...insecure }))
    t.match(answer, { active: true, client_id: service.clientId })
  })

  t.test('errors stay JSON, and q=0 or JSON-only Accept headers get JSON', async (t) => {
    const unauthenticated = await app.inject({ method: 'POST', url: '/oauth/introspect', payload: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' } })
    t.equal(unauthenticated.statusCode, 401)
    t.match(unauthenticated.json(), { error: 'invalid_client' })
    for (const accept of ['application/json', 'application/token-introspection+jwt;q=0, application/json']) {
      const plain = await app.inject({ method: 'POST', url: '/oauth/introspect', payload: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded', accept, authorization: basicAuth(resourceServer.clientId, resourceServer.clientSecret) } })
      t.match(plain.headers['content-type'], /^application\/json/)
      t.strictSame(plain.json(), { active: false })
    }
  })
})

t.test('key rotation: the old key stays published, old tokens stay valid, new tokens use the new key', async (t) => {
  const before = await jwtToken()
  const oldKid = decodeProtectedHeader(before).kid
  const { active } = await app.services.keys.rotateSigningKey()
  t.not(active.kid, oldKid)

  const jwks = await (await fetch(as.jwks_uri as string)).json() as { keys: Array<{ kid: string }> }
  t.strictSame(jwks.keys.map((key) => key.kid), [active.kid, oldKid])

  const verifier = createRemoteJWKSet(new URL(as.jwks_uri as string))
  await t.resolves(jwtVerify(before, verifier, { typ: 'at+jwt', issuer: issuerUrl, audience: issuerUrl }), 'a token signed before the rotation still verifies')
  t.match(await introspect(before), { active: true })

  const after = await jwtToken()
  t.equal(decodeProtectedHeader(after).kid, active.kid)
  await t.resolves(jwtVerify(after, verifier, { typ: 'at+jwt', issuer: issuerUrl, audience: issuerUrl }))
  t.match(await introspect(after), { active: true })
})
