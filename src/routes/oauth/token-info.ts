import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors, withChallenge } from '../../errors.js'
import { oauthErrors } from '../../../schemas/common.js'
import { bearerChallenge, parseAuthorization } from '../../../plugins/app/authentication.js'

/** GET /oauth/token/info — Doorkeeper's token info, with the pre-5.x field names too. */
const tokenInfo: FastifyPluginAsyncTypebox = async function (fastify) {
  const { resolver, counters } = fastify.services

  fastify.get('/oauth/token/info', {
    schema: {
      tags: ['oauth'],
      summary: 'Describe the bearer token (Doorkeeper style)',
      description: 'Send the token as `Authorization: Bearer …`. 401 with `WWW-Authenticate` when it is missing or not active.',
      security: [{ bearerAuth: [] }],
      response: {
        200: { $ref: 'TokenInfo' },
        ...oauthErrors(401, 503)
      }
    },
    // A hot path: no info line per request (GET /metrics counts them); failures still log.
    logLevel: 'warn',
    config: { oauthErrors: true }
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const authorization = parseAuthorization(request.headers.authorization)
    if (authorization?.scheme !== 'bearer') {
      // RFC 6750 §3.1: no error code when the request carries no bearer credentials at all
      // (no header, or another scheme); a garbled header gets the code the body names.
      throw withChallenge(Object.assign(new Errors.Unauthorized('a bearer token is required in the Authorization header'), { oauthError: 'invalid_token' }),
        authorization?.scheme === 'malformed' ? bearerChallenge('invalid_token', 'The Authorization header is malformed') : bearerChallenge())
    }
    const record = await counters.outcome('token_info', resolver.resolve(authorization.token))
    if (record === null) {
      throw withChallenge(Object.assign(new Errors.Unauthorized('the access token is invalid, expired or revoked'), { oauthError: 'invalid_token' }),
        bearerChallenge('invalid_token', 'The access token is invalid'))
    }
    fastify.usage.record(record.id, request.ip)
    const expiresIn = record.expiresAt === null ? null : Math.max(0, Math.floor((record.expiresAt - Date.now()) / 1000))
    const scope = record.effectiveScope.split(' ')
    return {
      resource_owner_id: record.userId,
      scope,
      expires_in: expiresIn,
      application: { uid: record.clientId },
      created_at: record.createdAt,
      scopes: scope,
      expires_in_seconds: expiresIn
    }
  })
}

export default tokenInfo
