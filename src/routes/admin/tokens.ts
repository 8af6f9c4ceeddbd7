import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { AccessToken } from '../../entities/access-token.js'
import { Errors } from '../../errors.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { TokenLookupResults, TokenRevokeResults, TokenValues, UserTokenParams } from '../../../schemas/admin.js'
import { AdminTokensQuery, TokenViewList } from '../../../schemas/listing.js'
import { CreateTokenBody, UsernameParams } from '../../../schemas/tokens.js'
import { pageLinks } from '../../services/pagination.js'
import { findTokenByReference, listTokensByPage, revokeAndForget, tokenFilterQuery } from '../../services/token-management.js'
import { JWT_TYPES } from '../../services/signing-keys.js'
import { isWellFormedToken, lastEight } from '../../services/token-format.js'
import { issuePersonalToken, revokeToken } from '../../services/tokens.js'
import { findUserOrFail } from '../../services/users.js'
import { serializeCreatedToken, toTokenView } from '../../views.js'

const security = [{ bearerAuth: [] }]

/** Tokens of any user, and leaked tokens by value: /api/v1/admin/users/{username}/tokens, /api/v1/admin/tokens/*. */
const adminTokens: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services, config } = fastify

  fastify.get('/api/v1/admin/users/:username/tokens', {
    schema: {
      tags: ['admin'],
      summary: 'List a user\'s tokens (page/limit, X-Total-Count, Link; filters)',
      description: 'Filters: `state` (active, expired, revoked; all by default), `q` (name contains), and created/last-used/expires before/after.',
      security,
      params: UsernameParams,
      querystring: AdminTokensQuery,
      response: { 200: TokenViewList, ...problems(400, 401, 403, 404) }
    }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    const user = await findUserOrFail(em, request.params.username)
    const { page = 1, limit = 20, ...filters } = request.query
    const { items, total } = await listTokensByPage(em, { $and: [{ user }, tokenFilterQuery(filters)] }, page, limit)
    reply.header('x-total-count', String(total)).links(request, pageLinks(page, limit, total))
    const now = new Date()
    return items.map((token) => toTokenView(token, config.scopes, now))
  })

  fastify.post('/api/v1/admin/users/:username/tokens', {
    schema: {
      tags: ['admin'],
      summary: 'Create a token for a user (provisioning; works with Basic auth disabled)',
      description: 'Same body and answer as the self-service route. The token records the admin in `created_by`.',
      security,
      params: UsernameParams,
      body: CreateTokenBody,
      response: { 201: { $ref: 'CreatedToken' }, ...problems(400, 401, 403, 404, 409, 503) }
    }
  }, async function (request, reply) {
    const principal = request.principal!
    const issued = await fastify.orm.em.fork().transactional(async (tx) => {
      const owner = await findUserOrFail(tx, request.params.username)
      return await issuePersonalToken(tx, services.issuer, { ownerId: owner.id, input: request.body, actor: principal.actor })
    })
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })

  fastify.delete('/api/v1/admin/users/:username/tokens/:token', {
    schema: {
      tags: ['admin'],
      summary: 'Revoke a user\'s token by id, or else by name',
      description: '404 when nothing matches; 422 when the value is one token\'s id and another\'s name, or names several tokens.',
      security,
      params: UserTokenParams,
      response: { 204: NoContent, ...problems(400, 401, 403, 404, 422) }
    }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    const user = await findUserOrFail(em, request.params.username)
    const token = await findTokenByReference(em, user, request.params.token)
    await revokeAndForget(em, services.invalidation, token, request.principal!.actor, 'revoked by an administrator')
    return reply.code(204).send(null)
  })

  function valuesOf (body: { token?: string, tokens?: string[] }): string[] {
    if ((body.token === undefined) === (body.tokens === undefined)) throw new Errors.TokenValuesShape()
    return body.tokens ?? [body.token as string]
  }

  /**
   * The values that are our tokens by their form alone: well-formed opaque tokens, and JWT access
   * tokens one of our keys signed. Expiry does not count here (the resolver's isWellFormed()
   * refuses an expired JWT): a leaked token that has since expired is still ours, and is reported
   * found and expired. Identification only; nothing is accepted by it. It may reload the keys
   * (another replica rotated): call it outside a transaction, as the embedded database has a
   * single connection.
   */
  async function recognised (values: string[]): Promise<Set<string>> {
    const ours = new Set<string>()
    for (const value of values) {
      if (isWellFormedToken(value, config.TOKEN_PREFIX)) {
        ours.add(value)
        continue
      }
      let outcome = services.keys.identify(value, JWT_TYPES.accessToken)
      if (outcome === 'unknown-key' && await services.keys.reloadForUnknownKey()) outcome = services.keys.identify(value, JWT_TYPES.accessToken)
      if (outcome === 'valid') ours.add(value)
    }
    return ours
  }

  async function findByValue (em: ReturnType<typeof fastify.orm.em.fork>, value: string, ours: Set<string>): Promise<AccessToken | null | 'malformed'> {
    if (!ours.has(value)) return 'malformed'
    return await em.findOne(AccessToken, { digest: services.digester.digest(value) }, { populate: ['application', 'user'] })
  }

  fastify.post('/api/v1/admin/tokens/lookup', {
    schema: {
      tags: ['admin'],
      summary: 'Identify tokens by their value (a leaked token from a scanner report)',
      description: 'Answers, in input order, whose each token is, its scopes and whether it is live — never the secret. Unknown and malformed values are reported, not errors.',
      security,
      body: TokenValues,
      response: { 200: TokenLookupResults, ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const values = valuesOf(request.body)
    const ours = await recognised(values)
    const em = fastify.orm.em.fork()
    const now = new Date()
    const results = []
    for (const value of values) {
      const found = await findByValue(em, value, ours)
      if (found === null || found === 'malformed') {
        results.push({ token_last_eight: lastEight(value), found: false, active: false, reason: found === null ? 'unknown' : 'malformed', token: null })
        continue
      }
      const view = toTokenView(found, config.scopes, now)
      const ownerSuspended = found.user != null && found.user.suspendedAt != null
      const active = view.state === 'active' && !ownerSuspended
      results.push({ token_last_eight: lastEight(value), found: true, active, reason: active ? null : (view.state !== 'active' ? view.state : 'owner_suspended'), token: view })
    }
    reply.header('cache-control', 'no-store')
    return results
  })

  fastify.post('/api/v1/admin/tokens/revoke', {
    schema: {
      tags: ['admin'],
      summary: 'Revoke tokens by their value, in bulk (GitHub\'s credential revocation)',
      description: 'Each value is reported: revoked, already_revoked, unknown or malformed. Unknown values are not an error. Revocation takes effect before the answer.',
      security,
      body: TokenValues,
      response: { 200: TokenRevokeResults, ...problems(400, 401, 403) }
    }
  }, async function (request) {
    const values = valuesOf(request.body)
    const ours = await recognised(values)
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const results = await em.transactional(async (tx) => {
      const out = []
      for (const value of values) {
        const found = await findByValue(tx, value, ours)
        if (found === null || found === 'malformed') {
          out.push({ token_last_eight: lastEight(value), result: found === null ? 'unknown' as const : 'malformed' as const, token_id: null, owner: null })
          continue
        }
        const revoked = revokeToken(tx, found, principal.actor, 'revoked by value by an administrator')
        out.push({ token_last_eight: lastEight(value), result: revoked ? 'revoked' as const : 'already_revoked' as const, token_id: found.id, owner: found.user?.username ?? null })
      }
      return out
    })
    await services.invalidation.tokens(results.flatMap((result) => result.token_id !== null ? [result.token_id] : []))
    return results
  })
}

export default adminTokens
