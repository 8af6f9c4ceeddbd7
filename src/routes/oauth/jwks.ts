import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

const PublishedKey = Type.Object({
  kty: Type.String({ description: 'EC' }),
  crv: Type.String({ description: 'P-256' }),
  x: Type.String(),
  y: Type.String(),
  kid: Type.String({ description: 'RFC 7638 thumbprint; the `kid` in the header of every JWT signed with this key' }),
  alg: Type.Literal('ES256'),
  use: Type.Literal('sig')
}, { title: 'JsonWebKey' })

const KeySet = Type.Object({
  keys: Type.Array(PublishedKey, { description: 'The active key first, then retired keys whose tokens may still be alive' })
}, { title: 'JsonWebKeySet', description: 'RFC 7517 §5 JWK Set' })

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
    },
    config: { oauthErrors: true }
  }, async function (_request, reply) {
    reply.header('cache-control', 'public, max-age=60')
    return keys.publishedKeys()
  })
}

export default jwks
