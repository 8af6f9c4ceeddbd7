import t from 'tap'
import * as oauth from 'oauth4webapi'
import { build, freePort, seedApplication, seedToken, seedUser } from '../../helper.js'

/**
 * Real OAuth client flows: oauth4webapi (strict, specification-checking) against a listening
 * server, discovering everything from the issuer alone, as a service would in production.
 */

// A free loopback port, so PUBLIC_URL (the issuer) can be known before the server listens.
const port = await freePort()
const issuerUrl = `http://127.0.0.1:${port}`
const app = await build(t, { PUBLIC_URL: issuerUrl })
await app.listen({ host: '127.0.0.1', port })

const issuer = new URL(issuerUrl)
// Plain http on loopback only: the library refuses it unless told (it is deprecated on purpose).
const insecure = { [oauth.allowInsecureRequests]: true }

const service = await seedApplication(app, ['introspect', 'write:repository'])
const serviceClient: oauth.Client = { client_id: service.clientId }
const resourceServer = await seedApplication(app, ['introspect'])
const resourceServerClient: oauth.Client = { client_id: resourceServer.clientId }

async function discover (): Promise<oauth.AuthorizationServer> {
  return await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
}

t.test('discovery: the metadata is found from the issuer and its issuer matches', async (t) => {
  const as = await discover()
  t.equal(as.issuer, issuerUrl)
  t.equal(as.token_endpoint, `${issuerUrl}/oauth/token`)
  t.equal(as.introspection_endpoint, `${issuerUrl}/oauth/introspect`)
  t.equal(as.revocation_endpoint, `${issuerUrl}/oauth/revoke`)
  t.strictSame(as.grant_types_supported, ['client_credentials'])
})

t.test('discovery refuses a server that claims another issuer', async (t) => {
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure })
  await t.rejects(oauth.processDiscoveryResponse(new URL('https://elsewhere.example.test'), response), { code: oauth.JSON_ATTRIBUTE_COMPARISON })
})

t.test('client_credentials → introspection → revocation → introspection, with each client authentication method', async (t) => {
  const as = await discover()
  const methods: Array<[string, (secret: string) => oauth.ClientAuth]> = [
    ['client_secret_basic', oauth.ClientSecretBasic],
    ['client_secret_post', oauth.ClientSecretPost]
  ]
  for (const [name, method] of methods) {
    t.test(name, async (t) => {
      const granted = await oauth.processClientCredentialsResponse(as, serviceClient,
        await oauth.clientCredentialsGrantRequest(as, serviceClient, method(service.clientSecret), { scope: 'write:repository' }, insecure))
      t.equal(granted.token_type, 'bearer', 'the library lower-cases token_type')
      t.equal(granted.expires_in, 3600)
      t.equal(granted.scope, 'write:repository')
      t.match(granted.access_token, /^tsr_/)

      const rsAuth = method(resourceServer.clientSecret)
      const active = await oauth.processIntrospectionResponse(as, resourceServerClient,
        await oauth.introspectionRequest(as, resourceServerClient, rsAuth, granted.access_token, insecure))
      t.match(active, {
        active: true,
        client_id: service.clientId,
        sub: service.clientId,
        scope: 'write:repository read:repository',
        token_type: 'Bearer',
        iss: issuerUrl
      })
      t.equal((active.exp as number) - (active.iat as number), 3600)

      await oauth.processRevocationResponse(
        await oauth.revocationRequest(as, serviceClient, method(service.clientSecret), granted.access_token, insecure))

      const inactive = await oauth.processIntrospectionResponse(as, resourceServerClient,
        await oauth.introspectionRequest(as, resourceServerClient, rsAuth, granted.access_token, insecure))
      t.strictSame({ ...inactive }, { active: false })
    })
  }
})

t.test('all of the application\'s scopes when the client asks for none', async (t) => {
  const as = await discover()
  const granted = await oauth.processClientCredentialsResponse(as, serviceClient,
    await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretBasic(service.clientSecret), {}, insecure))
  t.equal(granted.scope, 'introspect write:repository')
})

t.test('the issued token authenticates the application at the introspection endpoint as a bearer token', async (t) => {
  const as = await discover()
  const granted = await oauth.processClientCredentialsResponse(as, serviceClient,
    await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretBasic(service.clientSecret), { scope: 'introspect' }, insecure))
  await seedUser(app, 'someone')
  const personal = await seedToken(app, 'someone')
  const response = await oauth.protectedResourceRequest(granted.access_token, 'POST', new URL(as.introspection_endpoint as string),
    new Headers({ 'content-type': 'application/x-www-form-urlencoded' }), new URLSearchParams({ token: personal.token }), insecure)
  t.equal(response.status, 200)
  t.match(await response.json(), { active: true, username: 'someone' })
})

t.test('errors reach the client as the library expects them', async (t) => {
  const as = await discover()

  t.test('a wrong secret: a WWW-Authenticate Basic challenge on a 401', async (t) => {
    const response = await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretBasic('wrong'), {}, insecure)
    t.equal(response.status, 401)
    const error = await oauth.processClientCredentialsResponse(as, serviceClient, response).catch((caught: unknown) => caught)
    t.ok(error instanceof oauth.WWWAuthenticateChallengeError)
    t.match((error as oauth.WWWAuthenticateChallengeError).cause, [{ scheme: 'basic', parameters: { realm: 'tessera' } }])
  })

  t.test('a scope the application does not hold: invalid_scope', async (t) => {
    const response = await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretPost(service.clientSecret), { scope: 'admin' }, insecure)
    const error = await oauth.processClientCredentialsResponse(as, serviceClient, response).catch((caught: unknown) => caught)
    t.ok(error instanceof oauth.ResponseBodyError)
    t.equal((error as oauth.ResponseBodyError).error, 'invalid_scope')
    t.equal((error as oauth.ResponseBodyError).status, 400)
  })

  t.test('a public client: unauthorized_client', async (t) => {
    const publicApp = await seedApplication(app, ['introspect'], { confidential: false })
    const publicClient: oauth.Client = { client_id: publicApp.clientId }
    const response = await oauth.clientCredentialsGrantRequest(as, publicClient, oauth.None(), {}, insecure)
    const error = await oauth.processClientCredentialsResponse(as, publicClient, response).catch((caught: unknown) => caught)
    t.ok(error instanceof oauth.ResponseBodyError)
    t.equal((error as oauth.ResponseBodyError).error, 'unauthorized_client')
  })

  t.test('revoking another application\'s token succeeds without effect', async (t) => {
    const granted = await oauth.processClientCredentialsResponse(as, serviceClient,
      await oauth.clientCredentialsGrantRequest(as, serviceClient, oauth.ClientSecretBasic(service.clientSecret), {}, insecure))
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, resourceServerClient, oauth.ClientSecretBasic(resourceServer.clientSecret), granted.access_token, insecure))
    const answer = await oauth.processIntrospectionResponse(as, resourceServerClient,
      await oauth.introspectionRequest(as, resourceServerClient, oauth.ClientSecretBasic(resourceServer.clientSecret), granted.access_token, insecure))
    t.equal(answer.active, true)
  })
})
