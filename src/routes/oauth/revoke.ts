import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { FilterQuery } from '@mikro-orm/core'
import { Errors } from '../../errors.js'
import { AccessToken } from '../../entities/access-token.js'
import { actorFromRequest } from '../../http/actor.js'
import { addressKey } from '../../http/address.js'
import { authorizationOf } from '../../http/credentials.js'
import { oauthErrors } from '../../../schemas/common.js'
import { RevocationAnswer, RevokeBody } from '../../../schemas/oauth.js'
import { INTERNAL_CLIENT_ID } from '../../services/applications.js'
import type { Actor } from '../../services/audit.js'
import { revokeAndForget } from '../../services/token-management.js'
import { CLIENT_RATE_LIMIT } from './client-rate-limit.js'

/** Who may revoke what: an application its own tokens, or the holder of a personal token that very token. */
type Revoker =
  | { kind: 'client', applicationId: string, clientId: string }
  | { kind: 'holder' }

/**
 * POST /oauth/revoke — RFC 7009. The answer is the same 200 whether or not anything was revoked,
 * so the endpoint tells nobody whether a token exists or whose it is.
 */
const revoke: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services } = fastify
  const perCaller = fastify.keyedRateLimit(CLIENT_RATE_LIMIT)

  /** Client authentication, or none at all, or a bearer token that is the token being revoked. */
  async function revokerOf (request: FastifyRequest, body: { token: string, client_id?: string, client_secret?: string }): Promise<Revoker> {
    const authorization = authorizationOf(request)
    const postCredentials = body.client_id !== undefined || body.client_secret !== undefined
    if (authorization?.scheme === 'bearer') {
      if (postCredentials) throw new Errors.MultipleClientAuthentication()
      if (authorization.token !== body.token) throw new Errors.RevokeOnlyItself()
      return { kind: 'holder' }
    }
    if (authorization === null && !postCredentials) return { kind: 'holder' }
    const client = await fastify.authenticateClient(request, body)
    return { kind: 'client', applicationId: client.applicationId, clientId: client.clientId }
  }

  fastify.post('/oauth/revoke', {
    schema: {
      tags: ['oauth'],
      summary: 'Revoke a token (RFC 7009)',
      description: 'An application (client_secret_basic, or client_id and client_secret in the form) revokes a token it owns. A personal token may revoke itself: send it in the form with no client authentication, ' +
        'or also as `Authorization: Bearer` (the same token). Unknown, malformed, foreign, expired or already revoked tokens get the same empty 200 and nothing happens. ' +
        'A revocation takes effect before the answer. Invalid client credentials are 401 invalid_client.',
      security: [{ clientSecretBasic: [] }, { bearerAuth: [] }, {}],
      consumes: ['application/x-www-form-urlencoded'],
      body: RevokeBody,
      response: {
        200: RevocationAnswer,
        ...oauthErrors(400, 401, 413, 415, 429, 503)
      }
    }
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { body } = request
    const revoker = await revokerOf(request, body)
    // A holder proves nothing before the lookup: its requests count against its address.
    await perCaller.enforce(request, revoker.kind === 'client' ? `revoke-client:${revoker.clientId}` : `revoke-holder:${addressKey(request.ip)}`)
    if (!services.resolver.isWellFormed(body.token)) return await reply.code(200).send()

    const now = new Date()
    const where: FilterQuery<AccessToken> = {
      digest: services.resolver.digest(body.token),
      revokedAt: null,
      $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }],
      ...(revoker.kind === 'client' ? { application: revoker.applicationId } : { application: { clientId: INTERNAL_CLIENT_ID } })
    }
    const em = fastify.orm.em.fork()
    const token = await em.findOne(AccessToken, where, { populate: ['user'] })
    if (token !== null) {
      let actor: Actor
      let reason: string
      if (revoker.kind === 'client') {
        actor = actorFromRequest(request, null, `client:${revoker.clientId}`)
        reason = 'revoked by its application (RFC 7009)'
      } else {
        // Whoever holds a personal token may act for its owner with it: the revocation is theirs.
        actor = actorFromRequest(request, token.user?.id ?? null, token.user?.username ?? 'anonymous')
        reason = 'revoked by presenting it (RFC 7009)'
      }
      await revokeAndForget(em, services.invalidation, token, actor, reason)
    }
    return await reply.code(200).send()
  })
}

export default revoke
