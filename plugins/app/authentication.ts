import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { Errors, withChallenge } from '../../src/errors.js'
import type { ClientRecord } from '../../src/services/client-auth.js'
import type { TokenRecord } from '../../src/services/token-cache.js'
import { recordAudit, type Actor } from '../../src/services/audit.js'

export type Authorization =
  | { scheme: 'basic', username: string, password: string }
  | { scheme: 'bearer', token: string }
  | { scheme: 'unsupported' }
  | { scheme: 'malformed' }

/** The challenge of every 401 that wants Basic credentials (a user's password, or client credentials). */
export const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'
const BEARER_CHALLENGE = 'Bearer realm="tessera"'

/** Parses an Authorization header (RFC 7617 Basic, RFC 6750 Bearer). */
export function parseAuthorization (header: string | undefined): Authorization | null {
  if (header === undefined || header === '') return null
  const space = header.indexOf(' ')
  if (space < 0) return { scheme: 'malformed' }
  const scheme = header.slice(0, space).toLowerCase()
  const value = header.slice(space + 1).trim()
  if (scheme === 'bearer') return value === '' || value.includes(' ') ? { scheme: 'malformed' } : { scheme: 'bearer', token: value }
  if (scheme !== 'basic') return { scheme: 'unsupported' }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return { scheme: 'malformed' }
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return { scheme: 'malformed' }
  return { scheme: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/**
 * The request's Authorization header, parsed once per request (the rate limiter's key and the
 * authentication both need it on the hot path).
 */
export function authorizationOf (request: FastifyRequest): Authorization | null {
  const header = request.headers.authorization
  const memo = request.parsedAuthorization
  if (memo !== null && memo.header === header) return memo.value
  const value = parseAuthorization(header)
  request.parsedAuthorization = { header, value }
  return value
}

/** RFC 6749 §2.3.1: client credentials in Basic are form-urlencoded before base64. */
export function formDecode (value: string): string | null {
  // Generated client ids and secrets carry neither: skip the regular expression and the decoder.
  if (!value.includes('%') && !value.includes('+')) return value
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

/**
 * The rate-limit key of a client endpoint's caller: the client it claims to be (Basic user name,
 * or client_id of client_secret_post — checked only afterwards, so a flood of wrong secrets is
 * limited under the name it uses), the tail of a bearer token, else the address.
 */
export function callerRateLimitKey (request: FastifyRequest): string {
  const header = request.headers.authorization
  if (header !== undefined && header !== '') {
    const authorization = authorizationOf(request)
    if (authorization?.scheme === 'basic') return `client:${authorization.username}`
    if (authorization?.scheme === 'bearer') return `bearer:${authorization.token.slice(-12)}`
    return `ip:${request.ip}`
  }
  const body = request.body as { client_id?: unknown } | undefined
  if (typeof body?.client_id === 'string') return `client:${body.client_id}`
  return `ip:${request.ip}`
}

export function bearerChallenge (error?: string, description?: string): string {
  if (error === undefined) return BEARER_CHALLENGE
  return `${BEARER_CHALLENGE}, error="${error}"${description !== undefined ? `, error_description="${description.replace(/["\\]/g, '')}"` : ''}`
}

export function actorFromRequest (request: FastifyRequest, id: string | null, label: string): Actor {
  const userAgent = request.headers['user-agent']
  return { id, label, ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent : null }
}

/** Who is calling an OAuth validation endpoint: an application, or a bearer token. */
export type Caller =
  | { kind: 'client', client: ClientRecord, key: string }
  | { kind: 'token', token: TokenRecord, key: string }

declare module 'fastify' {
  interface FastifyRequest {
    /** See authorizationOf(). */
    parsedAuthorization: { header: string | undefined, value: Authorization | null } | null
  }
  interface FastifyInstance {
    /**
     * Authenticates the caller of a validation endpoint: client_secret_basic,
     * client_secret_post, or a bearer token. Throws 400/401 OAuth errors.
     */
    authenticateCaller: (request: FastifyRequest, body: { client_id?: string, client_secret?: string }) => Promise<Caller>
    /** Writes an `auth.failed` audit event (best effort: never fails the request). */
    auditFailedAuthentication: (request: FastifyRequest, label: string, reason: string) => void
  }
}

export default fp(async function authentication (fastify) {
  const { clients, resolver } = fastify.services
  fastify.decorateRequest('parsedAuthorization', null)

  fastify.decorate('auditFailedAuthentication', function auditFailedAuthentication (request: FastifyRequest, label: string, reason: string) {
    const em = fastify.orm.em.fork()
    recordAudit(em, actorFromRequest(request, null, label.slice(0, 100)), 'auth.failed', { type: 'credential', label: label.slice(0, 200) }, { reason, route: request.routeOptions.url })
    em.flush().catch((error: unknown) => { request.log.warn({ err: error }, 'could not record a failed authentication') })
  })

  fastify.decorate('authenticateCaller', async function authenticateCaller (request: FastifyRequest, body: { client_id?: string, client_secret?: string }): Promise<Caller> {
    const authorization = authorizationOf(request)
    const postCredentials = body.client_id !== undefined || body.client_secret !== undefined

    if (authorization?.scheme === 'bearer') {
      if (postCredentials) throw Object.assign(new Errors.BadRequest('use one client authentication method, not several'), { oauthError: 'invalid_request' })
      const token = await resolver.resolve(authorization.token)
      if (token === null) {
        throw withChallenge(Object.assign(new Errors.Unauthorized('the bearer token is invalid, expired or revoked'), { oauthError: 'invalid_token' }),
          bearerChallenge('invalid_token', 'The access token is invalid'))
      }
      fastify.usage.record(token.id, request.ip)
      return { kind: 'token', token, key: `token:${token.id}` }
    }

    let clientId: string | null
    let secret: string | null
    if (authorization?.scheme === 'basic') {
      if (postCredentials) throw Object.assign(new Errors.BadRequest('use one client authentication method, not several'), { oauthError: 'invalid_request' })
      clientId = formDecode(authorization.username)
      secret = formDecode(authorization.password)
    } else if (authorization !== null) {
      throw withChallenge(new Errors.Unauthorized('unsupported or malformed Authorization header; use Basic (client credentials) or Bearer'), BASIC_CHALLENGE)
    } else if (postCredentials) {
      clientId = body.client_id ?? null
      secret = body.client_secret ?? null
    } else {
      throw withChallenge(new Errors.Unauthorized('client authentication required: client_secret_basic, client_secret_post or a bearer token with the introspect scope'), BASIC_CHALLENGE)
    }
    if (clientId === null || secret === null || clientId === '' || secret === '') {
      throw withChallenge(new Errors.Unauthorized('client_id and client_secret are both required'), BASIC_CHALLENGE)
    }
    const client = await clients.authenticate(clientId, secret)
    if (client === null) {
      fastify.auditFailedAuthentication(request, `client:${clientId}`, 'invalid client credentials')
      throw withChallenge(new Errors.Unauthorized('invalid client credentials'), BASIC_CHALLENGE)
    }
    return { kind: 'client', client, key: `client:${client.clientId}` }
  })
}, { name: 'authentication', dependencies: ['services', 'orm', 'usage'] })
