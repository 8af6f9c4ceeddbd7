import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { KeySet } from '../../../schemas/oauth.js'

/**
 * GET /.well-known/jwks.json — the public keys that verify JWT access tokens and signed
 * introspection answers (RFC 9701). Served from memory; cacheable for less than the key refresh
 * interval, so verifiers see a rotation soon after replicas do.
 */
const jwks: FastifyPluginAsyncTypebox = async function (fastify) {
  const { keys } = fastify.services

  fastify.get('/.well-known/jwks.json', {
    schema: {
      tags: ['oauth'],
      summary: 'Public signing keys (JWKS)',
      description: 'Verify JWT access tokens (`typ: at+jwt`) and signed introspection answers (`typ: token-introspection+jwt`) with these keys, picking the one named by the JWT header\'s `kid`. After a rotation the previous key stays here until every token it signed has expired.',
      security: [],
      response: { 200: KeySet }
    }
  }, async function (_request, reply) {
    reply.header('cache-control', 'public, max-age=60')
    return keys.publishedKeys()
  })
}

export default jwks
