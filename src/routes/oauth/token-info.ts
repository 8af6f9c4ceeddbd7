import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { EXPIRATION_HEADER, expirationHeader } from '../../http/expiration.js'
import { oauthErrors } from '../../../schemas/common.js'
import { JSON_TYPE } from '../../http/principal.js'
import type { TokenRecord } from '../../services/token-resolver.js'

/** GET /oauth/token/info — Doorkeeper's token info, with the pre-5.x field names too. */
const tokenInfo: FastifyPluginAsyncTypebox = async function (fastify) {
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
    logLevel: 'warn'
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const record = await fastify.requireBearer(request, 'token_info')
    const expiresIn = record.expiresAt === null ? null : Math.max(0, Math.floor((record.expiresAt - Date.now()) / 1000))
    // The answer's bytes are kept in the (cached) record, made again only when `expires_in` has
    // moved on. Content-Type set on a string: Fastify sends it as it is.
    if (record.tokenInfo?.expiresIn !== expiresIn) {
      record.tokenInfo = {
        expiresIn,
        json: reply.serializeInput(tokenInfoOf(record, expiresIn), '200') as string,
        expiration: record.expiresAt === null ? null : expirationHeader(record.expiresAt)
      }
    }
    if (record.tokenInfo.expiration !== null) reply.header(EXPIRATION_HEADER, record.tokenInfo.expiration)
    reply.type(JSON_TYPE)
    return record.tokenInfo.json
  })
}

function tokenInfoOf (record: TokenRecord, expiresIn: number | null): Record<string, unknown> {
  const scope = record.effectiveScope === '' ? [] : record.effectiveScope.split(' ')
  return {
    resource_owner_id: record.userId,
    scope,
    expires_in: expiresIn,
    application: { uid: record.clientId },
    created_at: record.createdAt,
    scopes: scope,
    expires_in_seconds: expiresIn,
    ...(record.audience !== null ? { aud: record.audience } : {})
  }
}

export default tokenInfo
