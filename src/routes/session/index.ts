import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { WebSession } from '../../entities/session.js'
import { User } from '../../entities/user.js'
import { Errors } from '../../errors.js'
import { addressKey } from '../../http/address.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { SessionView, SignInBody } from '../../../schemas/session.js'
import { csrfTokenFor, endSession, isSessionSecret, SESSION_SCOPES, startSession } from '../../services/sessions.js'

/**
 * Sign-in, the current session and sign-out of the self-service web page: /api/v1/session.
 * The session then authenticates the token routes (plugins/app/session.ts).
 */
const session: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, services, webSessions } = fastify
  const window = config.RATE_LIMIT_WINDOW * 1000
  // The password API's limits, per address and, separately, per username: the same counters as
  // Basic authentication's (one key space), so both ways of guessing share one budget.
  const limitSignIns = fastify.combinedRateLimit([
    { max: config.RATE_LIMIT_PASSWORD_PER_IP, timeWindow: window, keyGenerator: (request) => `password-ip:${addressKey(request.ip)}` },
    {
      max: config.RATE_LIMIT_PASSWORD_PER_USER,
      timeWindow: window,
      keyGenerator: (request: FastifyRequest) => `password-user:${String((request.body as { username?: unknown } | undefined)?.username ?? '').toLowerCase()}`
    }
  ])

  function view ({ session, user, secret }: { session: WebSession, user: User, secret: string }) {
    return {
      username: user.username,
      user_id: user.id,
      admin: user.admin,
      scopes: [...SESSION_SCOPES],
      created_at: session.createdAt.toISOString(),
      expires_at: session.expiresAt.toISOString(),
      idle_timeout: webSessions.policy.idleTimeout,
      csrf_token: csrfTokenFor(secret)
    }
  }

  function noStore (reply: FastifyReply): FastifyReply {
    return reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
  }

  fastify.post('/api/v1/session', {
    schema: {
      tags: ['session'],
      summary: 'Sign in to the web page: verify a password once, start a session',
      description: 'Answers the session (with its CSRF token) and sets an HttpOnly, SameSite=Strict cookie holding the session secret (Secure behind HTTPS). ' +
        `The session lasts at most SESSION_LIFETIME (${config.SESSION_LIFETIME} s) and ends after SESSION_IDLE_TIMEOUT (${webSessions.policy.idleTimeout} s) without a request. ` +
        'Refused from another origin; rate-limited as the password API is. 403 when password sign-in is disabled (BASIC_AUTH_ENABLED=false).',
      security: [],
      body: SignInBody,
      response: { 201: SessionView, ...problems(400, 401, 403, 415, 429, 503) }
    },
    onRequest: async function sameOriginOnly (request) { webSessions.assertSameOrigin(request) },
    preHandler: limitSignIns
  }, async function (request, reply) {
    if (!config.BASIC_AUTH_ENABLED) throw new Errors.PasswordSignInDisabled()
    const { username, password } = request.body
    const user = await fastify.authenticatePassword(request, username, password, 'sign-in')
    const em = fastify.orm.em.fork()
    const previous = webSessions.secretOf(request)
    const userAgent = request.headers['user-agent']
    const started = await em.transactional(async (tx) => {
      // Signing in again replaces the session this browser had.
      if (previous !== null && isSessionSecret(previous)) await tx.nativeDelete(WebSession, { digest: services.digester.digest(previous) })
      const owner = await tx.findOneOrFail(User, user.id)
      return await startSession(tx, services.digester, { user: owner, policy: webSessions.policy, ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent : null })
    })
    request.log.info({ session: { id: started.session.id, user: user.username } }, 'web session started')
    webSessions.setCookie(noStore(reply), started.secret).code(201)
    return view({ session: started.session, user, secret: started.secret })
  })

  fastify.get('/api/v1/session', {
    schema: {
      tags: ['session'],
      summary: 'The current web session, with its CSRF token',
      description: 'The page asks this on load: 401 when not signed in (or when the session has ended).',
      security: [{ sessionCookie: [] }],
      response: { 200: SessionView, ...problems(401, 403) }
    }
  }, async function (request, reply) {
    const active = await webSessions.require(request)
    noStore(reply)
    return view(active)
  })

  fastify.delete('/api/v1/session', {
    schema: {
      tags: ['session'],
      summary: 'Sign out: end the web session at once',
      description: 'The session row is deleted, so its cookie no longer works anywhere, and the cookie is cleared. Needs the CSRF token.',
      security: [{ sessionCookie: [], csrfToken: [] }],
      response: { 204: NoContent, ...problems(401, 403) }
    }
  }, async function (request, reply) {
    const active = await webSessions.require(request)
    await endSession(fastify.orm.em.fork(), active.session.id)
    request.log.info({ session: { id: active.session.id, user: active.user.username } }, 'web session ended')
    return webSessions.clearCookie(noStore(reply)).code(204).send(null)
  })
}

export default session
