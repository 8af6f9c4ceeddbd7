import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { User } from '../../entities/user.js'
import { Errors } from '../../errors.js'
import { actorFromRequest } from '../../http/actor.js'
import { addressKey } from '../../http/address.js'
import { authorizationOf } from '../../http/credentials.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { UserTokenParams } from '../../../schemas/admin.js'
import { TokenViewList, UserTokensQuery } from '../../../schemas/listing.js'
import { CreateTokenBody, UsernameParams } from '../../../schemas/tokens.js'
import { pageLinks } from '../../services/pagination.js'
import { findTokenByReference, listTokensByPage, revokeAndForget, tokenFilterQuery } from '../../services/token-management.js'
import { issuePersonalToken } from '../../services/tokens.js'
import { serializeCreatedToken, toTokenView } from '../../views.js'

/** Personal access tokens, Forgejo style: /api/v1/users/{username}/tokens. */
const userTokens: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, services } = fastify
  const window = config.RATE_LIMIT_WINDOW * 1000
  // Password attempts are limited per username and, separately, per address.
  const limitPasswordAttempts = fastify.combinedRateLimit([
    { max: config.RATE_LIMIT_PASSWORD_PER_IP, timeWindow: window, keyGenerator: (request) => `password-ip:${addressKey(request.ip)}` },
    {
      max: config.RATE_LIMIT_PASSWORD_PER_USER,
      timeWindow: window,
      keyGenerator: (request: FastifyRequest) => `password-user:${String((request.params as { username?: string }).username ?? '').toLowerCase()}`
    }
  ])

  /** Basic authentication with the path user's password (argon2, rate-limited by the caller); 401/403 otherwise. */
  async function verifyPassword (request: FastifyRequest, username: string): Promise<User> {
    if (!config.BASIC_AUTH_ENABLED) throw new Errors.BasicAuthDisabled()
    const authorization = authorizationOf(request)
    if (authorization?.scheme !== 'basic') throw new Errors.PasswordRequired()
    if (authorization.username.toLowerCase() !== username.toLowerCase()) throw new Errors.CredentialsOfAnotherUser(username)
    return await fastify.authenticatePassword(request, username, authorization.password, 'basic')
  }

  fastify.post('/api/v1/users/:username/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Create a personal access token',
      description: 'Requires Basic authentication with that user\'s password: a token cannot mint a token. The plaintext is in the response once (`token`, and `sha1` as Forgejo names it), with `Cache-Control: no-store`. Answers 403 when Basic authentication is disabled by configuration.',
      security: [{ basicAuth: [] }],
      params: UsernameParams,
      body: CreateTokenBody,
      response: {
        201: { $ref: 'CreatedToken' },
        ...problems(400, 401, 403, 409, 413, 415, 429, 503)
      }
    },
    onRequest: limitPasswordAttempts
  }, async function (request, reply) {
    if (authorizationOf(request)?.scheme === 'bearer') {
      if (!config.BASIC_AUTH_ENABLED) throw new Errors.BasicAuthDisabled()
      throw new Errors.TokenCannotMintTokens('authenticate with the user\'s username and password (Basic)')
    }
    const user = await verifyPassword(request, request.params.username)
    const actor = actorFromRequest(request, user.id, user.username)
    const issued = await fastify.orm.em.fork().transactional(async (tx) =>
      await issuePersonalToken(tx, services.issuer, { ownerId: user.id, input: request.body, actor }))
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })

  /**
   * The path user, authenticated by their password (Basic) or by one of their own tokens
   * holding `scope`. Another user's token is a 403.
   */
  function ownerAuthentication (scope: string) {
    const requireToken = fastify.requireUser(scope)
    return async function authenticateOwner (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const { username } = request.params as { username: string }
      const authorization = authorizationOf(request)
      if (authorization?.scheme === 'bearer') {
        await requireToken(request, reply)
        if (request.principal?.user.username.toLowerCase() !== username.toLowerCase()) throw new Errors.TokenOfAnotherUser(username)
        return
      }
      if (authorization === null && !config.BASIC_AUTH_ENABLED) throw new Errors.TokenRequired(`one of ${username}'s tokens with the ${scope} scope`)
      await limitPasswordAttempts(request, reply)
      const user = await verifyPassword(request, username)
      request.principal = { user, token: null, actor: actorFromRequest(request, user.id, user.username) }
    }
  }

  fastify.get('/api/v1/users/:username/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'List a user\'s tokens, Forgejo style (page/limit, X-Total-Count and Link)',
      description: 'Basic authentication with the user\'s password, or one of the user\'s own tokens with `read:tokens`. Newest first; revoked tokens are hidden unless `state=revoked` or `state=all`; expired ones are listed with `state: "expired"`.',
      security: [{ basicAuth: [] }, { bearerAuth: [] }],
      params: UsernameParams,
      querystring: UserTokensQuery,
      response: { 200: TokenViewList, ...problems(400, 401, 403, 429, 503) }
    },
    preHandler: ownerAuthentication('read:tokens')
  }, async function (request, reply) {
    const { page = 1, limit = 20, state } = request.query
    const { user } = request.principal!
    const filter = state === undefined ? { revokedAt: null } : tokenFilterQuery({ state })
    const { items, total } = await listTokensByPage(fastify.orm.em.fork(), { $and: [{ user: user.id }, filter] }, page, limit)
    reply.header('x-total-count', String(total)).links(request, pageLinks(page, limit, total))
    const now = new Date()
    return items.map((token) => toTokenView(token, config.scopes, now))
  })

  fastify.delete('/api/v1/users/:username/tokens/:token', {
    schema: {
      tags: ['tokens'],
      summary: 'Revoke one of a user\'s tokens by id, or else by name',
      description: 'Basic authentication with the user\'s password, or one of the user\'s own tokens with `write:tokens`. 404 when nothing matches; 422 when the value is one token\'s id and another\'s name, or names several tokens.',
      security: [{ basicAuth: [] }, { bearerAuth: [] }],
      params: UserTokenParams,
      response: { 204: NoContent, ...problems(400, 401, 403, 404, 422, 429, 503) }
    },
    preHandler: ownerAuthentication('write:tokens')
  }, async function (request, reply) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const token = await findTokenByReference(em, principal.user, request.params.token)
    await revokeAndForget(em, services.invalidation, token, principal.actor, 'revoked by its owner')
    return reply.code(204).send(null)
  })
}

export default userTokens
