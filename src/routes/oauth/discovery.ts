import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Static } from 'typebox'
import { ServerMetadata } from '../../../schemas/oauth.js'

const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post']

/**
 * GET /.well-known/oauth-authorization-server — RFC 8414, so OAuth client libraries find the
 * endpoints from the issuer alone. Built once: it changes only with the configuration.
 */
const discovery: FastifyPluginAsyncTypebox = async function (fastify) {
  const issuer = fastify.config.publicUrl
  const metadata: Static<typeof ServerMetadata> = {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    grant_types_supported: ['client_credentials'],
    response_types_supported: [],
    scopes_supported: fastify.config.scopes.names,
    introspection_signing_alg_values_supported: ['ES256'],
    service_documentation: `${issuer}/documentation`
  }

  fastify.get('/.well-known/oauth-authorization-server', {
    schema: {
      tags: ['oauth'],
      summary: 'Authorization server metadata (RFC 8414)',
      description: 'Where the token, introspection and revocation endpoints are, how clients authenticate to them, and which scopes exist. Public and cacheable.',
      security: [],
      response: { 200: ServerMetadata }
    }
  }, async function (_request, reply) {
    reply.header('cache-control', 'public, max-age=300')
    return metadata
  })
}

export default discovery
