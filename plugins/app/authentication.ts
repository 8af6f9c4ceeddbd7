import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { User } from '../../src/entities/user.js'
import { Errors } from '../../src/errors.js'
import { actorFromRequest } from '../../src/http/actor.js'
import { authorizationOf, formDecode, type ClientCredentialFields } from '../../src/http/credentials.js'
import { recordAudit } from '../../src/services/audit.js'
import type { ClientRecord } from '../../src/services/client-auth.js'
import type { TokenRecord } from '../../src/services/token-resolver.js'
import { authenticateUser } from '../../src/services/users.js'

/** Who is calling an OAuth endpoint: an application, or (where allowed) a bearer token. */
export type Caller =
  | { kind: 'client', client: ClientRecord }
  | { kind: 'token', token: TokenRecord }

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The application calling an OAuth endpoint, by client_secret_basic or client_secret_post; a
     * bearer token cannot stand in for one. Throws OAuth errors (400/401).
     */
    authenticateClient: (request: FastifyRequest, body: ClientCredentialFields) => Promise<ClientRecord>
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
    recordAudit(em, actorFromRequest(request, null, label.slice(0, 100)), 'auth.failed', { type: 'credential', label: label.slice(0, 200) }, { reason, route: request.routeOptions.url })
    em.flush().catch((error: unknown) => { request.log.warn({ err: error }, 'could not record a failed authentication') })
  }
  fastify.decorate('auditFailedAuthentication', auditFailedAuthentication)

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
    const client = await clients.authenticate(clientId, secret)
    if (client === null) {
      auditFailedAuthentication(request, `client:${clientId}`, 'invalid client credentials')
      throw new Errors.InvalidClient()
    }
    return client
  }

  fastify.decorate('authenticateClient', async function authenticateClient (request: FastifyRequest, body: ClientCredentialFields): Promise<ClientRecord> {
    if (authorizationOf(request)?.scheme === 'bearer') throw new Errors.BearerCannotAuthenticateClient()
    return await clientOf(request, body, 'client_secret_basic or client_secret_post')
  })

  fastify.decorate('authenticateCaller', async function authenticateCaller (request: FastifyRequest, body: ClientCredentialFields): Promise<Caller> {
    if (authorizationOf(request)?.scheme !== 'bearer') {
      return { kind: 'client', client: await clientOf(request, body, 'client_secret_basic, client_secret_post or a bearer token with the introspect scope') }
    }
    if (body.client_id !== undefined || body.client_secret !== undefined) throw new Errors.MultipleClientAuthentication()
    return { kind: 'token', token: await fastify.requireBearer(request, 'api') }
  })

  fastify.decorate('authenticatePassword', async function authenticatePassword (request: FastifyRequest, username: string, password: string, failure: 'basic' | 'sign-in'): Promise<User> {
    const outcome = await authenticateUser(fastify.orm.em.fork(), hasher, username, password)
    if (outcome.status === 'invalid') {
      auditFailedAuthentication(request, username, failure === 'basic' ? 'invalid username or password' : 'invalid username or password (web sign-in)')
      throw failure === 'basic' ? new Errors.InvalidPassword() : new Errors.SignInFailed()
    }
    if (outcome.status === 'suspended') throw new Errors.AccountSuspended(outcome.user.username)
    return outcome.user
  })
}, { name: 'authentication', dependencies: ['services', 'orm'] })
