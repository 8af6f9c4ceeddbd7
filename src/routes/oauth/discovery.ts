import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'

const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post']

const ServerMetadata = Type.Object({
  issuer: Type.String({ description: 'PUBLIC_URL: the `iss` of every token and introspection answer' }),
  token_endpoint: Type.String(),
  introspection_endpoint: Type.String(),
  revocation_endpoint: Type.String(),
  jwks_uri: Type.String({ description: 'The keys that verify JWT access tokens and signed introspection answers' }),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  introspection_endpoint_auth_methods_supported: Type.Array(Type.String({ description: 'A bearer token with the introspect scope is accepted too (RFC 8414 has no name for it)' })),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  grant_types_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String(), { description: 'Empty: there is no authorization endpoint' }),
  scopes_supported: Type.Array(Type.String()),
  introspection_signing_alg_values_supported: Type.Array(Type.String({ description: 'RFC 9701 §7: algorithms of signed introspection answers (Accept: application/token-introspection+jwt)' })),
  service_documentation: Type.String()
}, { title: 'AuthorizationServerMetadata', description: 'RFC 8414 §2 authorization server metadata' })

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
    },
    config: { oauthErrors: true }
  }, async function (_request, reply) {
    reply.header('cache-control', 'public, max-age=300')
    return metadata
  })
}

export default discovery
