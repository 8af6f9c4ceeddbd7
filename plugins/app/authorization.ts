import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { User } from '../../src/entities/user.js'
import { Errors, withChallenge } from '../../src/errors.js'
import type { Actor } from '../../src/services/audit.js'
import type { TokenRecord } from '../../src/services/token-cache.js'
import { actorFromRequest, bearerChallenge, parseAuthorization } from './authentication.js'

/** The user behind the bearer token of an authenticated API request. */
export interface Principal {
  user: User
  /** The bearer token used, or null when the user authenticated with a password or a web session. */
  token: TokenRecord | null
  /** The web page's session (cookie), when that is how the user authenticated. */
  session?: { id: string, expiresAt: Date }
  actor: Actor
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null
  }
  interface FastifyInstance {
    /** onRequest hook: a bearer token with the `admin` scope, held by an active admin user. */
    requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** Hook factory: a bearer token holding `scope`, owned by an active user (or the web session, for its scopes). */
    requireUserToken: (scope: string) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/**
 * Authorization of bearer-token API routes. A missing or dead token is a 401 with a
 * `WWW-Authenticate: Bearer` challenge; a live token that lacks the scope (or, for admin
 * routes, whose owner is not an admin) is a 403. Basic auth is not accepted here.
 * Without an Authorization header, the web page's session cookie may stand in for a token
 * (plugins/app/session.ts: its own scopes only, CSRF checks on state-changing requests).
 */
export default fp(async function authorization (fastify) {
  const { resolver } = fastify.services
  fastify.decorateRequest('principal', null)

  async function authenticate (request: FastifyRequest, scope: string): Promise<Principal> {
    const authorization = parseAuthorization(request.headers.authorization)
    if (authorization === null) {
      const session = await fastify.webSessions.principal(request, scope)
      if (session !== null) return session
      throw withChallenge(new Errors.Unauthorized(`this route needs a bearer token with the ${scope} scope`), bearerChallenge())
    }
    if (authorization.scheme !== 'bearer') {
      throw withChallenge(new Errors.Unauthorized(`this route accepts only a bearer token (with the ${scope} scope), not ${authorization.scheme === 'basic' ? 'Basic authentication' : 'this Authorization scheme'}`),
        bearerChallenge('invalid_request', 'Use the Bearer scheme'))
    }
    const token = await resolver.resolve(authorization.token)
    if (token === null) {
      throw withChallenge(new Errors.Unauthorized('the bearer token is invalid, expired or revoked'), bearerChallenge('invalid_token', 'The access token is invalid'))
    }
    if (!token.effectiveScope.split(' ').includes(scope)) {
      throw withChallenge(new Errors.Forbidden(`the token lacks the ${scope} scope`), bearerChallenge('insufficient_scope', `Requires the ${scope} scope`))
    }
    if (token.userId === null) throw new Errors.Forbidden('this route needs a token that belongs to a user')
    // Read the owner afresh: admin rights and suspension take effect on the next request.
    const user = await fastify.orm.em.fork().findOne(User, token.userId)
    if (user === null || !user.isActive()) {
      throw withChallenge(new Errors.Unauthorized('the bearer token is invalid, expired or revoked'), bearerChallenge('invalid_token', 'The access token is invalid'))
    }
    fastify.usage.record(token.id, request.ip)
    return { user, token, actor: actorFromRequest(request, user.id, user.username) }
  }

  fastify.decorate('requireAdmin', async function requireAdmin (request: FastifyRequest) {
    const principal = await authenticate(request, 'admin')
    if (!principal.user.admin) throw new Errors.Forbidden(`${principal.user.username} is not an administrator`)
    request.principal = principal
  })

  fastify.decorate('requireUserToken', function requireUserToken (scope: string) {
    return async function requireScope (request: FastifyRequest) {
      request.principal = await authenticate(request, scope)
    }
  })
}, { name: 'authorization', dependencies: ['services', 'orm', 'usage', 'web-sessions'] })
