import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { Errors, withChallenge } from '../../errors.js'
import { Application } from '../../entities/application.js'
import { oauthErrors } from '../../../schemas/common.js'
import { actorFromRequest, BASIC_CHALLENGE, callerRateLimitKey, formDecode, parseAuthorization } from '../../../plugins/app/authentication.js'
import type { ClientRecord } from '../../services/client-auth.js'
import { clientTokenLifetime, issueClientToken, printable, resolveClientScopes } from '../../services/client-credentials.js'
import { requireFormBody } from './form.js'

/** The challenge of a failed client authentication: the scheme a client may use here (RFC 6749 §5.2). */

/**
 * Requests per client and minute on the token and revocation endpoints. Fixed and generous: a
 * well-behaved client asks for a token once per lifetime (an hour by default), so this only
 * stops a runaway loop from filling the token table and the audit log.
 */
export const CLIENT_REQUESTS_PER_MINUTE = 600

/**
 * The rate limit of the client-authenticated endpoints (token, revoke): per claimed client,
 * applied after body parsing so a client_secret_post caller is keyed by the client_id in the form.
 */
export const CLIENT_RATE_LIMIT = {
  hook: 'preValidation' as const,
  max: CLIENT_REQUESTS_PER_MINUTE,
  timeWindow: 60_000,
  keyGenerator: callerRateLimitKey
}

const TokenRequestBody = Type.Object({
  grant_type: Type.String({ minLength: 1, maxLength: 255, description: 'client_credentials (the only grant this server issues)' }),
  scope: Type.Optional(Type.String({ maxLength: 2048, description: 'Space-separated scopes, each one the application holds; absent or empty: all of them (never admin)' })),
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'client_secret_post' })),
  client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'client_secret_post' }))
})

const TokenResponse = Type.Object({
  access_token: Type.String({ description: 'A Tessera token, shown once: opaque, or an RFC 9068 JWT for applications with token_format jwt; introspect it or send it as a bearer token' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the token expires' }),
  scope: Type.String({ description: 'The granted scopes, space-separated' })
}, { title: 'TokenResponse', description: 'RFC 6749 §5.1 successful token response' })

/** The client credentials fields a form body may carry (client_secret_post). */
export interface ClientCredentialFields {
  client_id?: string
  client_secret?: string
}

/**
 * client_secret_basic or client_secret_post, never a bearer token: on these endpoints the caller
 * must be an application, and a token cannot stand in for one. Throws 400/401 OAuth errors.
 */
export async function authenticateClient (fastify: FastifyInstance, request: FastifyRequest, body: ClientCredentialFields): Promise<ClientRecord> {
  if (parseAuthorization(request.headers.authorization)?.scheme === 'bearer') {
    throw withChallenge(new Errors.Unauthorized('a bearer token cannot authenticate a client here: use client_secret_basic or client_secret_post'), BASIC_CHALLENGE)
  }
  const caller = await fastify.authenticateCaller(request, body)
  if (caller.kind !== 'client') throw new Error('authenticateCaller returned a token caller for a request without a bearer token')
  return caller.client
}

/** The client_id a request names, before any check (Basic user name, form-decoded, or the form's). */
function claimedClientId (request: FastifyRequest, body: ClientCredentialFields): string | null {
  const authorization = parseAuthorization(request.headers.authorization)
  if (authorization?.scheme === 'basic') return formDecode(authorization.username)
  return authorization === null ? body.client_id ?? null : null
}

function oauthError<T extends Error> (error: T, code: string): T {
  return Object.assign(error, { oauthError: code })
}

/**
 * POST /oauth/token — RFC 6749 §4.4: a confidential application trades its credentials for a
 * short-lived token of its own (no user), limited to scopes it holds.
 */
const token: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services, config } = fastify
  const lifetime = clientTokenLifetime(config.CLIENT_CREDENTIALS_TOKEN_LIFETIME, config.TOKEN_MAX_LIFETIME)

  /** A public client can name itself but not authenticate: tell it the grant is not for it. */
  async function authenticateConfidentialClient (request: FastifyRequest, body: ClientCredentialFields): Promise<ClientRecord> {
    try {
      return await authenticateClient(fastify, request, body)
    } catch (error) {
      const claimed = (error as { statusCode?: number }).statusCode === 401 ? claimedClientId(request, body) : null
      if (claimed !== null && claimed !== '' && claimed.length <= 64) {
        const application = await fastify.orm.em.fork().findOne(Application, { clientId: claimed }, { fields: ['confidential'] })
        if (application !== null && !application.confidential) {
          throw oauthError(new Errors.BadRequest('a public client cannot use the client_credentials grant: it has no secret to authenticate with'), 'unauthorized_client')
        }
      }
      throw error
    }
  }

  fastify.post('/oauth/token', {
    schema: {
      tags: ['oauth'],
      summary: 'Issue a token to an application (RFC 6749 §4.4 client_credentials)',
      description: 'A confidential application authenticates with client_secret_basic, or client_id and client_secret in the form (client_secret_post), and receives a token of its own, owned by no user, ' +
        'expiring after CLIENT_CREDENTIALS_TOKEN_LIFETIME seconds. `scope` must name scopes the application holds (all of them when absent); `admin` is never granted. ' +
        'Errors are RFC 6749 §5.2: invalid_request, invalid_client (401, with WWW-Authenticate), unauthorized_client (a public client), unsupported_grant_type, invalid_scope.',
      security: [{ clientSecretBasic: [] }, {}],
      consumes: ['application/x-www-form-urlencoded'],
      body: TokenRequestBody,
      response: {
        200: TokenResponse,
        ...oauthErrors(400, 401, 413, 415, 429, 503)
      }
    },
    config: {
      oauthErrors: true,
      rateLimit: CLIENT_RATE_LIMIT
    },
    preValidation: requireFormBody
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { body } = request
    const client = await authenticateConfidentialClient(request, body)
    if (body.grant_type !== 'client_credentials') {
      throw oauthError(new Errors.BadRequest(`grant_type ${printable(body.grant_type)} is not supported: this server issues client_credentials only`), 'unsupported_grant_type')
    }
    const actor = actorFromRequest(request, null, `client:${client.clientId}`)
    return await fastify.orm.em.fork().transactional(async (tx) => {
      const application = await tx.findOne(Application, client.applicationId)
      if (application === null) {
        // Deleted since its credentials were verified and cached.
        throw withChallenge(new Errors.Unauthorized('invalid client credentials'), BASIC_CHALLENGE)
      }
      let scopes: string[]
      try {
        scopes = resolveClientScopes(config.scopes, application, body.scope)
      } catch (error) {
        throw oauthError(error as Error, 'invalid_scope')
      }
      return await issueClientToken(tx, services.issuer, { application, scopes, lifetime, actor })
    })
  })
}

export default token
