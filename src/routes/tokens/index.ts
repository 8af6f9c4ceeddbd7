import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AccessToken } from '../../entities/access-token.js'
import { Errors } from '../../errors.js'
import { problems } from '../../../schemas/common.js'
import { OwnTokensQuery, TokenViewList } from '../../../schemas/listing.js'
import { RotateBody, TokenIdParams } from '../../../schemas/tokens.js'
import { keysetLinks, planKeyset } from '../../services/pagination.js'
import { listTokensByKeyset, revokeAndForget, tokenFilterQuery } from '../../services/token-management.js'
import { rotateToken } from '../../services/tokens.js'
import { serializeCreatedToken, toTokenView } from '../../views.js'

const security = [{ bearerAuth: [] }]

/**
 * GoToSocial-style review of the caller's own tokens: /api/v1/tokens. A token id that is not
 * the caller's answers 404, never 403, so ids do not leak.
 */
const tokenReview: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services, config } = fastify

  async function ownTokenOr404 (em: ReturnType<typeof fastify.orm.em.fork>, userId: string, id: string): Promise<AccessToken> {
    const token = await em.findOne(AccessToken, { id: id.toLowerCase(), user: userId }, { populate: ['application', 'user'] })
    if (token === null) throw new Errors.OwnTokenNotFound(id)
    return token
  }

  fastify.get('/api/v1/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Review your own tokens, newest first (keyset pagination with a Link header)',
      description: 'Needs a bearer token with `read:tokens`. `max_id` pages back in time, `min_id` forward, `since_id` gives the newest after an id; `limit` 1–80 (default 20). Revoked (invalidated) tokens are hidden unless `state=revoked` or `state=all`; expired ones are listed with `state: "expired"`.',
      security,
      querystring: OwnTokensQuery,
      response: { 200: TokenViewList, ...problems(400, 401, 403) }
    },
    onRequest: fastify.requireUser('read:tokens')
  }, async function (request, reply) {
    const { max_id: maxId, since_id: sinceId, min_id: minId, limit, state } = request.query
    const plan = planKeyset({ max_id: maxId, since_id: sinceId, min_id: minId, limit })
    const filter = state === undefined ? { revokedAt: null } : tokenFilterQuery({ state })
    const page = await listTokensByKeyset(fastify.orm.em.fork(), { $and: [{ user: request.principal!.user.id }, filter] }, plan)
    reply.links(request, keysetLinks(page, plan.limit))
    const now = new Date()
    return page.map((token) => toTokenView(token, config.scopes, now))
  })

  fastify.get('/api/v1/tokens/:id', {
    schema: {
      tags: ['tokens'],
      summary: 'Show one of your tokens',
      security,
      params: TokenIdParams,
      response: { 200: { $ref: 'TokenView' }, ...problems(400, 401, 403, 404) }
    },
    onRequest: fastify.requireUser('read:tokens')
  }, async function (request) {
    return toTokenView(await ownTokenOr404(fastify.orm.em.fork(), request.principal!.user.id, request.params.id), config.scopes)
  })

  fastify.post('/api/v1/tokens/:id/invalidate', {
    schema: {
      tags: ['tokens'],
      summary: 'Invalidate one of your tokens; answers its info',
      description: 'Needs `write:tokens`. The token is inactive everywhere before the answer is sent. Invalidating an invalidated token is a no-op.',
      security,
      params: TokenIdParams,
      response: { 200: { $ref: 'TokenView' }, ...problems(400, 401, 403, 404) }
    },
    onRequest: fastify.requireUser('write:tokens')
  }, async function (request) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const token = await ownTokenOr404(em, principal.user.id, request.params.id)
    await revokeAndForget(em, services.invalidation, token, principal.actor, 'invalidated by its owner')
    return toTokenView(token, config.scopes)
  })

  fastify.post('/api/v1/tokens/:id/rotate', {
    schema: {
      tags: ['tokens'],
      summary: 'Rotate one of your tokens: a new secret, same name, scopes, audience and lifetime',
      description: `Needs \`write:tokens\`. The new plaintext is in the answer once. The old token dies at once, or after \`grace_period\` seconds (at most ${config.TOKEN_ROTATION_MAX_GRACE}) during which both work. Rotation mints a secret, so: a token may rotate itself; it may rotate another of your tokens only if it grants every scope that token grants and is limited to no fewer audiences (403 TESSERA_ROTATION_BEYOND_CALLER otherwise); the web session may rotate any of your tokens. A token its owner may no longer hold (\`admin\` after a demotion) is not rotated (403).`,
      security,
      params: TokenIdParams,
      body: RotateBody(config.TOKEN_ROTATION_MAX_GRACE),
      response: { 201: { $ref: 'CreatedToken' }, ...problems(400, 401, 403, 404, 409) }
    },
    onRequest: fastify.requireUser('write:tokens'),
    // The body is optional: a POST without one rotates at once, as `{}` does.
    preValidation: async function emptyBodyIsNoGrace (request) { request.body ??= {} }
  }, async function (request, reply) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const old = await ownTokenOr404(em, principal.user.id, request.params.id)
    const issued = await em.transactional(async (tx) => await rotateToken(tx, services.issuer, {
      tokenId: old.id,
      graceSeconds: request.body.grace_period ?? 0,
      actor: principal.actor,
      rotatedBy: principal.token
    }))
    await services.invalidation.tokens([old.id])
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })
}

export default tokenReview
