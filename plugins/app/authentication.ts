import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { User } from '../../src/entities/user.js'
import { Errors } from '../../src/errors.js'
import { actorFromRequest } from '../../src/http/actor.js'
import { addressKey } from '../../src/http/address.js'
import type { Caller } from '../../src/http/principal.js'
import { authorizationOf, formDecode, type ClientCredentialFields } from '../../src/http/credentials.js'
import { recordAudit } from '../../src/services/audit.js'
import type { ClientRecord } from '../../src/services/client-auth.js'
import { authenticateUser, isValidUsername } from '../../src/services/users.js'

/**
 * What a failed password authentication records instead of a username no user can have: such a
 * "username" is most often a password typed in the wrong field, which must not be stored.
 */
export const NOT_A_USERNAME = '(not a username)'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The application calling an OAuth endpoint, by client_secret_basic or client_secret_post; a
     * bearer token cannot stand in for one. Throws OAuth errors (400/401).
     */
    authenticateClient: (request: FastifyRequest, body: ClientCredentialFields) => Promise<ClientRecord>
    /**
     * The application a client_secret_basic request names when that pair was verified recently
     * (no I/O, no promise: the hot path's first try); undefined means authenticateClient or
     * authenticateCaller must decide, and throw what is wrong.
     */
    verifiedBasicClient: (request: FastifyRequest, body: ClientCredentialFields) => ClientRecord | undefined
    /** The caller of introspection: an application as above, or a bearer token (through requireBearer). */
    authenticateCaller: (request: FastifyRequest, body: ClientCredentialFields) => Promise<Caller>
    /**
     * A user's password, for every route that takes one (Basic authentication, the web page's
     * sign-in): the user when it is right and the account active; else 401 (`failure` names the
     * challenge: Basic, or none a browser would act on), or 403 for a suspended account.
     * Failures are audited.
     */
    authenticatePassword: (request: FastifyRequest, username: string, password: string, failure: 'basic' | 'sign-in') => Promise<User>
    /** Writes an `auth.failed` audit event (best effort: never fails the request). */
    auditFailedAuthentication: (request: FastifyRequest, label: string, reason: string) => void
  }
}

export default fp(async function authentication (fastify) {
  const { clients, hasher } = fastify.services
  fastify.decorateRequest('parsedAuthorization', null)

  function auditFailedAuthentication (request: FastifyRequest, label: string, reason: string): void {
    const em = fastify.orm.em.fork()
    // Unsliced: recordAudit masks secrets before it shortens, so no cut leaves part of one unmasked.
    recordAudit(em, actorFromRequest(request, null, label), 'auth.failed', { type: 'credential', label }, { reason, route: request.routeOptions.url })
    em.flush().catch((error: unknown) => { request.log.warn({ err: error }, 'could not record a failed authentication') })
  }
  fastify.decorate('auditFailedAuthentication', auditFailedAuthentication)

  // Failed client authentications, counted per address (checked before any argon2 is spent) and
  // per client_id (past it, failures answer 429: the client is under attack; its own successful
  // authentications are never refused by this count, or a stranger could lock it out).
  const window = fastify.config.RATE_LIMIT_WINDOW * 1000
  const clientFailuresPerAddress = fastify.keyedRateLimit({
    max: fastify.config.RATE_LIMIT_CLIENT_FAILURES_PER_IP, timeWindow: window, message: 'too many failed client authentications from this address'
  })
  const clientFailuresPerClient = fastify.keyedRateLimit({
    max: fastify.config.RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT, timeWindow: window, message: 'too many failed authentications for this client'
  })

  /**
   * Counts a failed client authentication; throws 429 once the client is past its allowance of
   * failures, else 401 (audited). Past the allowance the failures are not audited one by one —
   * the warning stands for them: an INSERT per guess let a flood queue writes ahead of the real
   * client's lookup until it timed out (503).
   */
  async function clientAuthenticationFailed (request: FastifyRequest, clientId: string, addressCounter: string): Promise<never> {
    await clientFailuresPerAddress.count(request, addressCounter)
    // An id no application can have is counted per address only: its own counter would protect nothing.
    if (clientId.length <= 64) {
      const failures = await clientFailuresPerClient.count(request, `client-failures:${clientId}`)
      if (failures.crossed) {
        fastify.log.warn({ clientId, limit: fastify.config.RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT, windowSeconds: fastify.config.RATE_LIMIT_WINDOW },
          'failed authentications for a client exceed RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT: someone is guessing its secret; further failures answer 429 and are not audited one by one for the rest of the window')
      }
      if (failures.exceeded) throw failures.error
    }
    auditFailedAuthentication(request, `client:${clientId}`, 'invalid client credentials')
    throw new Errors.InvalidClient()
  }

  /** client_secret_basic or client_secret_post; `methods` names what the route accepts, for the 401. */
  async function clientOf (request: FastifyRequest, body: ClientCredentialFields, methods: string): Promise<ClientRecord> {
    const authorization = authorizationOf(request)
    const postCredentials = body.client_id !== undefined || body.client_secret !== undefined
    let clientId: string | null
    let secret: string | null
    if (authorization?.scheme === 'basic') {
      if (postCredentials) throw new Errors.MultipleClientAuthentication()
      clientId = formDecode(authorization.username)
      secret = formDecode(authorization.password)
    } else if (authorization !== null) {
      throw new Errors.UnsupportedClientAuthorization()
    } else if (postCredentials) {
      clientId = body.client_id ?? null
      secret = body.client_secret ?? null
    } else {
      throw new Errors.ClientAuthenticationRequired(methods)
    }
    if (clientId === null || secret === null || clientId === '' || secret === '') throw new Errors.ClientCredentialsIncomplete()
    const addressCounter = `client-failures-ip:${addressKey(request.ip)}`
    const client = await clients.authenticate(clientId, secret, {
      // Only when the pair was not verified recently, i.e. before argon2 (or its stand-in) would run.
      beforeVerifying: async () => {
        const refused = await clientFailuresPerAddress.exhausted(request, addressCounter)
        if (refused !== null) throw refused
      }
    })
    return client ?? await clientAuthenticationFailed(request, clientId, addressCounter)
  }

  fastify.decorate('authenticateClient', async function authenticateClient (request: FastifyRequest, body: ClientCredentialFields): Promise<ClientRecord> {
    if (authorizationOf(request)?.scheme === 'bearer') throw new Errors.BearerCannotAuthenticateClient()
    return await clientOf(request, body, 'client_secret_basic or client_secret_post')
  })

  fastify.decorate('verifiedBasicClient', function verifiedBasicClient (request: FastifyRequest, body: ClientCredentialFields): ClientRecord | undefined {
    const authorization = authorizationOf(request)
    if (authorization?.scheme !== 'basic' || body.client_id !== undefined || body.client_secret !== undefined) return undefined
    const clientId = formDecode(authorization.username)
    const secret = formDecode(authorization.password)
    if (clientId === null || secret === null || clientId === '' || secret === '') return undefined
    return clients.verified(clientId, secret)
  })

  fastify.decorate('authenticateCaller', async function authenticateCaller (request: FastifyRequest, body: ClientCredentialFields): Promise<Caller> {
    if (authorizationOf(request)?.scheme !== 'bearer') {
      return { kind: 'client', client: await clientOf(request, body, 'client_secret_basic, client_secret_post or a bearer token with the introspect scope') }
    }
    if (body.client_id !== undefined || body.client_secret !== undefined) throw new Errors.MultipleClientAuthentication()
    return { kind: 'token', token: await fastify.requireBearer(request, 'api', { ownApi: true }) }
  })

  fastify.decorate('authenticatePassword', async function authenticatePassword (request: FastifyRequest, username: string, password: string, failure: 'basic' | 'sign-in'): Promise<User> {
    const outcome = await authenticateUser(fastify.orm.em.fork(), hasher, username, password)
    if (outcome.status === 'invalid') {
      auditFailedAuthentication(request, isValidUsername(username) ? username : NOT_A_USERNAME, failure === 'basic' ? 'invalid username or password' : 'invalid username or password (web sign-in)')
      throw failure === 'basic' ? new Errors.InvalidPassword() : new Errors.SignInFailed()
    }
    if (outcome.status === 'suspended') throw new Errors.AccountSuspended(outcome.user.username)
    outcome.rehashed?.catch((error: unknown) => { fastify.log.warn({ err: error }, 'could not re-hash a password with the current argon2 parameters; the next sign-in tries again') })
    return outcome.user
  })
}, { name: 'authentication', dependencies: ['services', 'orm', 'rate-limit'] })
