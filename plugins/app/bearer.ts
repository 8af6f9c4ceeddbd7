import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { Errors } from '../../src/errors.js'
import { authorizationOf } from '../../src/http/credentials.js'
import type { ValidationEndpoint } from '../../src/services/counters.js'
import type { TokenRecord } from '../../src/services/token-resolver.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The live bearer token the request authenticated with (set by requireBearer). */
    token: TokenRecord | null
  }
  interface FastifyInstance {
    /**
     * The one bearer step, for every route that takes a bearer token: parses the Authorization
     * header (401 with a bare challenge when it carries none, RFC 6750 §3.1), resolves the token
     * (cache, then database; 401 invalid_token unless it is active), counts the outcome under
     * `endpoint` in the validation metrics, records the token's use, and sets `request.token`.
     * A database failure propagates (503): an unknown token is never taken for a live one.
     * With `ownApi`, the token must also be valid for Tessera's own API: unrestricted, or limited
     * to audiences that include PUBLIC_URL (401 invalid_token otherwise).
     */
    requireBearer: (request: FastifyRequest, endpoint: ValidationEndpoint, options?: { ownApi?: boolean }) => TokenRecord | Promise<TokenRecord>
  }
}

export default fp(async function bearer (fastify) {
  const { resolver, counters } = fastify.services
  const { usage } = fastify
  // Tessera's own API is an audience like any other: its issuer URL.
  const ownAudience = fastify.config.publicUrl
  fastify.decorateRequest('token', null)

  // A token the cache knows is answered with no promise at all; only a lookup is awaited.
  fastify.decorate('requireBearer', function requireBearer (request: FastifyRequest, endpoint: ValidationEndpoint, options: { ownApi?: boolean } = {}): TokenRecord | Promise<TokenRecord> {
    const authorization = authorizationOf(request)
    if (authorization === null) throw new Errors.TokenRequired('a bearer token')
    if (authorization.scheme === 'malformed') throw new Errors.MalformedAuthorization()
    if (authorization.scheme !== 'bearer') throw new Errors.BearerSchemeRequired()
    const cached = resolver.cached(authorization.token)
    if (cached === undefined) {
      return counters.outcome(endpoint, resolver.resolve(authorization.token)).then((token) => accept(request, token, options))
    }
    counters.validated(endpoint, cached === null ? 'inactive' : 'active')
    return accept(request, cached, options)
  })

  function accept (request: FastifyRequest, token: TokenRecord | null, options: { ownApi?: boolean }): TokenRecord {
    if (token === null) throw new Errors.InvalidToken()
    if (options.ownApi === true && token.audience !== null && !token.audience.includes(ownAudience)) throw new Errors.TokenAudienceMismatch()
    // The address of the token's holder: under TRUST_PROXY, the one the last trusted proxy saw.
    usage.record(token.id, request.ip)
    request.token = token
    return token
  }
}, { name: 'bearer', dependencies: ['services', 'usage', 'authentication'] })
