import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WebSession } from '../../src/entities/session.js'
import type { User } from '../../src/entities/user.js'
import { Errors } from '../../src/errors.js'
import { actorFromRequest } from '../../src/http/actor.js'
import type { Principal } from '../../src/http/principal.js'
import { isValidCsrfToken, resolveSession, SESSION_SCOPES, type SessionPolicy } from '../../src/services/sessions.js'

/** The header the page sends the session's CSRF token in, on every state-changing request. */
const CSRF_HEADER = 'x-csrf-token'

/** A live session, its user read afresh, and the cookie secret that named it. */
export interface ActiveSession {
  session: WebSession
  user: User
  secret: string
}

export interface WebSessions {
  /** `__Host-tessera_session` behind HTTPS (PUBLIC_URL https://…), else `tessera_session`. */
  cookieName: string
  policy: SessionPolicy
  /**
   * The principal of a request that carries the session cookie and no Authorization header, or
   * null when there is no cookie. Cross-site requests are refused; state-changing ones must come
   * from this origin and carry the CSRF token. Throws 401 for an ended session, 403 when `scope`
   * is beyond what a session grants.
   */
  principal: (request: FastifyRequest, scope: string) => Promise<Principal | null>
  /** The live session of the request (same checks as `principal`); throws 401 without one. */
  require: (request: FastifyRequest) => Promise<ActiveSession>
  /** Refuses a request sent by another origin (sign-in: there is no CSRF token yet). */
  assertSameOrigin: (request: FastifyRequest) => void
  /** The cookie secret of the request, or null. */
  secretOf: (request: FastifyRequest) => string | null
  setCookie: (reply: FastifyReply, secret: string) => FastifyReply
  clearCookie: (reply: FastifyReply) => FastifyReply
}

declare module 'fastify' {
  interface FastifyInstance {
    webSessions: WebSessions
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The value of cookie `name` in a Cookie header; the first one when several are sent. */
function readCookie (header: string | undefined, name: string): string | null {
  if (header === undefined) return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}

/**
 * The web page's sessions as a way to authenticate to the API: an HttpOnly, SameSite=Strict
 * cookie holding a random secret (its digest is the database key), plus CSRF defences for every
 * state-changing request: the Origin and Sec-Fetch-Site headers must name this origin, and the
 * X-CSRF-Token header must carry the token derived from the session's secret.
 */
export default fp(async function webSessions (fastify) {
  const { config, services } = fastify
  const secure = config.publicUrl.startsWith('https:')
  const cookieName = secure ? '__Host-tessera_session' : 'tessera_session'
  const policy: SessionPolicy = { lifetime: config.SESSION_LIFETIME, idleTimeout: Math.min(config.SESSION_IDLE_TIMEOUT, config.SESSION_LIFETIME) }
  // With PUBLIC_URL set, that is the page's origin; without it, the request's own (as for Link headers).
  const configuredOrigin = config.PUBLIC_URL === '' ? null : new URL(config.publicUrl).origin
  const attributes = `Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`

  function expectedOrigin (request: FastifyRequest): string {
    return configuredOrigin ?? `${request.protocol}://${request.host}`
  }

  function secretOf (request: FastifyRequest): string | null {
    const value = readCookie(request.headers.cookie, cookieName)
    return value === null || value === '' ? null : value
  }

  /**
   * Fetch metadata and Origin: a browser names the page that sent a request. Another site (or
   * another origin of the same site: a second port, a sibling host) is refused. Requests with
   * neither header come from programs, not from a page an attacker controls.
   */
  function checkOrigin (request: FastifyRequest, stateChanging: boolean): void {
    const site = request.headers['sec-fetch-site']
    if (typeof site === 'string' && site !== 'same-origin' && !(site === 'none' && !stateChanging)) {
      throw new Errors.CrossOrigin(`the browser reports Sec-Fetch-Site: ${site}; the session works only from this server's own pages`)
    }
    if (!stateChanging) return
    const origin = request.headers.origin
    if (origin !== undefined && origin !== expectedOrigin(request)) {
      throw new Errors.CrossOrigin(`Origin ${origin} is not this server's origin ${expectedOrigin(request)}${configuredOrigin === null ? ' (behind a proxy, set PUBLIC_URL)' : ''}`)
    }
  }

  async function active (request: FastifyRequest, secret: string): Promise<ActiveSession> {
    const stateChanging = !SAFE_METHODS.has(request.method)
    checkOrigin(request, stateChanging)
    if (stateChanging) {
      const csrf = request.headers[CSRF_HEADER]
      if (typeof csrf !== 'string' || csrf === '') throw new Errors.CsrfTokenMissing()
      if (!isValidCsrfToken(secret, csrf)) throw new Errors.CsrfTokenInvalid()
    }
    const found = await resolveSession(fastify.orm.em.fork(), services.digester, secret, policy)
    switch (found.status) {
      case 'active':
        return { session: found.session, user: found.user, secret }
      case 'expired':
        throw new Errors.SessionEnded(found.reason === 'idle'
          ? `your session ended after ${policy.idleTimeout} seconds without activity; sign in again`
          : `your session reached its maximum lifetime of ${policy.lifetime} seconds; sign in again`)
      case 'suspended':
        throw new Errors.SessionEnded(`the account ${found.user.username} is suspended; its sessions have ended`)
      default:
        throw new Errors.SessionEnded('your session has ended (signed out, expired or unknown); sign in again')
    }
  }

  const sessions: WebSessions = {
    cookieName,
    policy,
    secretOf,
    assertSameOrigin (request) {
      checkOrigin(request, true)
    },
    async principal (request, scope) {
      const secret = secretOf(request)
      if (secret === null) return null
      const { session, user } = await active(request, secret)
      if (!SESSION_SCOPES.includes(scope)) throw new Errors.SessionScopeExceeded(scope)
      return { user, token: null, session: { id: session.id, expiresAt: session.expiresAt }, actor: actorFromRequest(request, user.id, user.username) }
    },
    async require (request) {
      const secret = secretOf(request)
      if (secret === null) throw new Errors.NotSignedIn()
      return await active(request, secret)
    },
    setCookie (reply, secret) {
      return reply.header('set-cookie', `${cookieName}=${secret}; ${attributes}; Max-Age=${policy.lifetime}`)
    },
    clearCookie (reply) {
      return reply.header('set-cookie', `${cookieName}=; ${attributes}; Max-Age=0`)
    }
  }
  fastify.decorate('webSessions', sessions)
}, { name: 'web-sessions', dependencies: ['services', 'orm'] })
