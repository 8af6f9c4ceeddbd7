import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { User } from '../../src/entities/user.js'
import { Errors } from '../../src/errors.js'
import { EXPIRATION_HEADER, expirationHeader } from '../../src/http/expiration.js'
import { actorFromRequest } from '../../src/http/actor.js'
import { authorizationOf } from '../../src/http/credentials.js'
import type { Principal } from '../../src/http/principal.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null
  }
  interface FastifyInstance {
    /**
     * Hook factory: the request's user, authenticated by a bearer token holding `scope` and owned
     * by an active user — or, without an Authorization header, by the web page's session (its own
     * scopes only). Sets `request.principal`.
     */
    requireUser: (scope: string) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** onRequest hook of the admin routes: a bearer token with the `admin` scope, held by an active admin user. */
    requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/**
 * Authorization of the REST API's bearer routes, on top of the one bearer step (requireBearer):
 * a missing or dead token is a 401 with a `WWW-Authenticate: Bearer` challenge; a live token
 * that lacks the scope (or, for admin routes, whose owner is not an admin) is a 403.
 */
export default fp(async function authorization (fastify) {
  fastify.decorateRequest('principal', null)

  async function authenticate (request: FastifyRequest, reply: FastifyReply, scope: string): Promise<Principal> {
    if (authorizationOf(request) === null) {
      const session = await fastify.webSessions.principal(request, scope)
      if (session !== null) return session
      throw new Errors.TokenRequired(`a bearer token with the ${scope} scope`)
    }
    const token = await fastify.requireBearer(request, 'api', { ownApi: true })
    // Every answer to a request a token authenticated says when that token expires (a 403 too).
    if (token.expiresAt !== null) reply.header(EXPIRATION_HEADER, expirationHeader(token.expiresAt))
    if (!token.effectiveScope.split(' ').includes(scope)) throw new Errors.InsufficientScope(scope)
    if (token.userId === null) throw new Errors.TokenWithoutUser()
    // Read the owner afresh: admin rights and suspension take effect on the next request.
    const user = await fastify.orm.em.fork().findOne(User, token.userId)
    if (user === null || !user.isActive()) throw new Errors.InvalidToken()
    return { user, token, actor: actorFromRequest(request, user.id, user.username) }
  }

  fastify.decorate('requireUser', function requireUser (scope: string) {
    return async function requireScope (request: FastifyRequest, reply: FastifyReply) {
      request.principal = await authenticate(request, reply, scope)
    }
  })

  fastify.decorate('requireAdmin', async function requireAdmin (request: FastifyRequest, reply: FastifyReply) {
    const principal = await authenticate(request, reply, 'admin')
    if (!principal.user.admin) throw new Errors.NotAdministrator(principal.user.username)
    request.principal = principal
  })
}, { name: 'authorization', dependencies: ['services', 'orm', 'bearer', 'web-sessions'] })
