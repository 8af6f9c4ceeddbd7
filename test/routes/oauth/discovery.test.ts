import t from 'tap'
import { build } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'

const app = await build(t, { PUBLIC_URL, SCOPES: 'read:repository write:repository deploy' })

t.test('GET /.well-known/oauth-authorization-server', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })

  t.test('answers exactly the RFC 8414 metadata of this server, built from PUBLIC_URL', async (t) => {
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.strictSame(res.json(), {
      issuer: PUBLIC_URL,
      token_endpoint: `${PUBLIC_URL}/oauth/token`,
      introspection_endpoint: `${PUBLIC_URL}/oauth/introspect`,
      revocation_endpoint: `${PUBLIC_URL}/oauth/revoke`,
      jwks_uri: `${PUBLIC_URL}/.well-known/jwks.json`,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      grant_types_supported: ['client_credentials'],
      response_types_supported: [],
      scopes_supported: ['admin', 'deploy', 'introspect', 'read:repository', 'read:tokens', 'write:repository', 'write:tokens'],
      introspection_signing_alg_values_supported: ['ES256'],
      service_documentation: `${PUBLIC_URL}/documentation`
    })
  })

  t.test('is public and cacheable for five minutes', async (t) => {
    t.equal(res.headers['cache-control'], 'public, max-age=300')
    t.equal(res.headers['www-authenticate'], undefined)
  })

  t.test('ignores credentials: the same answer with any Authorization header', async (t) => {
    const withAuth = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server', headers: { authorization: 'Bearer whatever' } })
    t.equal(withAuth.statusCode, 200)
    t.equal(withAuth.body, res.body)
  })

  t.test('every endpoint it names is served here', async (t) => {
    const metadata = res.json()
    for (const key of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
      const path = new URL(metadata[key]).pathname
      const answer = await app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '' })
      t.not(answer.statusCode, 404, `${key} ${path} exists`)
      t.match(answer.json(), { error: /^[a-z_]+$/ }, `${key} answers OAuth errors`)
    }
    const docs = await app.inject({ method: 'GET', url: new URL(metadata.service_documentation).pathname })
    t.equal(docs.statusCode, 200, 'service_documentation exists')
    const jwks = await app.inject({ method: 'GET', url: new URL(metadata.jwks_uri).pathname })
    t.equal(jwks.statusCode, 200, 'jwks_uri exists')
    t.match(jwks.json(), { keys: [{ kty: 'EC', alg: 'ES256', use: 'sig' }] })
  })
})

t.test('without PUBLIC_URL the issuer is http://HOST:PORT', async (t) => {
  const local = await build(t, { HOST: '127.0.0.1', PORT: '4321' })
  const res = await local.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
  t.equal(res.json().issuer, 'http://127.0.0.1:4321')
  t.equal(res.json().token_endpoint, 'http://127.0.0.1:4321/oauth/token')
})

t.test('a PUBLIC_URL with a trailing slash gives an issuer without one', async (t) => {
  const slashed = await build(t, { PUBLIC_URL: 'https://auth.example.test/' })
  const res = await slashed.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })
  t.equal(res.json().issuer, 'https://auth.example.test')
  t.equal(res.json().revocation_endpoint, 'https://auth.example.test/oauth/revoke')
})

t.test('the OpenAPI document describes the token, revocation and discovery endpoints', async (t) => {
  const document = (await app.inject({ method: 'GET', url: '/documentation/json' })).json()
  const token = document.paths['/oauth/token'].post
  t.strictSame(token.tags, ['oauth'])
  t.strictSame(token.security, [{ clientSecretBasic: [] }, {}])
  t.strictSame(Object.keys(token.requestBody.content), ['application/x-www-form-urlencoded'])
  t.strictSame(token.requestBody.content['application/x-www-form-urlencoded'].schema.required, ['grant_type'])
  t.strictSame(token.responses['200'].content['application/json'].schema.required, ['access_token', 'token_type', 'expires_in', 'scope'])
  for (const status of ['400', '401', '413', '415', '429', '503']) {
    t.strictSame(token.responses[status].content, { 'application/json': { schema: { $ref: '#/components/schemas/OAuthError' } } }, `token ${status} is an OAuth error`)
  }

  const revoke = document.paths['/oauth/revoke'].post
  t.strictSame(revoke.tags, ['oauth'])
  t.strictSame(revoke.security, [{ clientSecretBasic: [] }, { bearerAuth: [] }, {}])
  t.strictSame(revoke.requestBody.content['application/x-www-form-urlencoded'].schema.required, ['token'])
  t.strictSame(revoke.responses['200'].content, { 'text/plain': { schema: { type: 'string', maxLength: 0, description: 'Empty' } } }, 'revocation documents its empty 200')
  for (const status of ['400', '401', '413', '415', '429', '503']) {
    t.strictSame(revoke.responses[status].content, { 'application/json': { schema: { $ref: '#/components/schemas/OAuthError' } } }, `revoke ${status} is an OAuth error`)
  }

  const discovery = document.paths['/.well-known/oauth-authorization-server'].get
  t.strictSame(discovery.tags, ['oauth'])
  t.strictSame(discovery.security, [])
  t.match(discovery.responses['200'].content['application/json'].schema.required, ['issuer', 'token_endpoint', 'introspection_endpoint', 'revocation_endpoint'])
})
