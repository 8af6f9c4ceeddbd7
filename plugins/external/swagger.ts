import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { OAuthError, Problem } from '../../schemas/common.js'
import { CreatedToken } from '../../schemas/tokens.js'
import { Introspection, TokenInfo } from '../../schemas/oauth.js'
import { TokenView } from '../../schemas/listing.js'
import { ApplicationView, ApplicationWithSecret, AuditEventView, UserView } from '../../schemas/admin.js'

/** OpenAPI 3.1 generated from the route schemas: /documentation/json, and a page at /documentation. */
export default fp<{ publicUrl: string, version: string }>(async function openapi (fastify, options) {
  for (const schema of [Problem, OAuthError, CreatedToken, Introspection, TokenInfo, TokenView, UserView, ApplicationView, ApplicationWithSecret, AuditEventView]) fastify.addSchema(schema)
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tessera',
        description: 'A standalone token authority: issues access tokens and answers whether a bearer token is valid, and for whom.\n\n' +
          'Errors have two shapes. The REST API (`/api/v1/…`, `/metrics`, health, unknown routes) answers RFC 9457 problem details ' +
          '(`application/problem+json`, the `Problem` schema) whose `code` names the failure. The OAuth endpoints (`/oauth/…`, ' +
          '`/.well-known/…`, `/auth/verify`) answer RFC 6749 §5.2 / RFC 6750 §3 JSON (the `OAuthError` schema). A 401 carries a ' +
          '`WWW-Authenticate` challenge. Errors raised before a route runs (unknown route, a URL that does not decode, a path ' +
          'parameter over 200 characters: 414, a body over the limit: 413) come in the same shapes.',
        version: options.version
      },
      servers: [{ url: options.publicUrl }],
      tags: [
        { name: 'oauth', description: 'Validation for services and gateways (RFC 7662, Doorkeeper token info)' },
        { name: 'gateway', description: 'Forward authentication for API gateways (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz)' },
        { name: 'tokens', description: 'Personal access tokens' },
        { name: 'session', description: 'Sign-in sessions of the self-service web page (/settings/tokens)' },
        { name: 'admin', description: 'Administration and provisioning (a bearer token with the admin scope, held by an admin user)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'secret-scanning', description: 'Leaked-token reports from GitHub secret scanning (served with SECRET_SCANNING_GITHUB_KEYS)' }
      ],
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'A user\'s username and password' },
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'A Tessera access token' },
          clientSecretBasic: { type: 'http', scheme: 'basic', description: 'An application\'s client_id and client_secret (RFC 6749 §2.3.1)' },
          sessionCookie: { type: 'apiKey', in: 'cookie', name: 'tessera_session', description: 'The web page\'s session (POST /api/v1/session); `__Host-tessera_session` when PUBLIC_URL is https. HttpOnly, so only the browser sends it' },
          csrfToken: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token', description: 'The session\'s csrf_token: required with the session cookie on every state-changing request' }
        }
      }
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/documentation', staticCSP: true })
}, { name: 'openapi' })
