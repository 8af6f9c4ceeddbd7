import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Application } from '../../entities/application.js'
import { Errors } from '../../errors.js'
import { actorFromRequest } from '../../http/actor.js'
import { claimedClientId, type ClientCredentialFields } from '../../http/credentials.js'
import { oauthErrors } from '../../../schemas/common.js'
import { TokenRequestBody, TokenResponse } from '../../../schemas/oauth.js'
import type { ClientRecord } from '../../services/client-auth.js'
import { clientTokenLifetime, issueClientToken, printable, resolveClientScopes } from '../../services/client-credentials.js'
import { CLIENT_RATE_LIMIT } from './client-rate-limit.js'

/**
 * POST /oauth/token — RFC 6749 §4.4: a confidential application trades its credentials for a
 * short-lived token of its own (no user), limited to scopes it holds.
 */
const token: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services, config } = fastify
  const lifetime = clientTokenLifetime(config.CLIENT_CREDENTIALS_TOKEN_LIFETIME, config.TOKEN_MAX_LIFETIME)
  const perClient = fastify.keyedRateLimit(CLIENT_RATE_LIMIT)

  /** A public client can name itself but not authenticate: tell it the grant is not for it. */
  async function authenticateConfidentialClient (request: FastifyRequest, body: ClientCredentialFields): Promise<ClientRecord> {
    try {
      return await fastify.authenticateClient(request, body)
    } catch (error) {
      const claimed = (error as { statusCode?: number }).statusCode === 401 ? claimedClientId(request, body) : null
      if (claimed !== null && claimed !== '' && claimed.length <= 64) {
        const application = await fastify.orm.em.fork().findOne(Application, { clientId: claimed }, { fields: ['confidential'] })
        if (application !== null && !application.confidential) throw new Errors.PublicClientGrant()
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
    }
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { body } = request
    const client = await authenticateConfidentialClient(request, body)
    await perClient.enforce(request, `token-client:${client.clientId}`)
    if (body.grant_type !== 'client_credentials') throw new Errors.UnsupportedGrantType(printable(body.grant_type))
    const actor = actorFromRequest(request, null, `token-client:${client.clientId}`)
    return await fastify.orm.em.fork().transactional(async (tx) => {
      const application = await tx.findOne(Application, client.applicationId)
      // Deleted since its credentials were verified and cached.
      if (application === null) throw new Errors.InvalidClient()
      const scopes = resolveClientScopes(config.scopes, application, body.scope)
      return await issueClientToken(tx, services.issuer, { application, scopes, lifetime, actor })
    })
  })
}

export default token
