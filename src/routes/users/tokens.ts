import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { User } from '../../entities/user.js'
import { Errors, withChallenge } from '../../errors.js'
import { problems } from '../../../schemas/common.js'
import { UserTokenParams } from '../../../schemas/admin.js'
import { PageQuery, TokenFilterQuery } from '../../../schemas/listing.js'
import { CreateTokenBody, UsernameParams } from '../../../schemas/tokens.js'
import { actorFromRequest, BASIC_CHALLENGE, bearerChallenge, parseAuthorization, type Authorization } from '../../../plugins/app/authentication.js'
import type { Principal } from '../../../plugins/app/authorization.js'
import { findInternalApplication } from '../../services/applications.js'
import { pageLinks } from '../../services/pagination.js'
import { findTokenByReference, listTokensByPage, revokeAndForget, tokenFilterQuery, toTokenView } from '../../services/token-management.js'
import { issueToken } from '../../services/tokens.js'
import { findUserByUsername } from '../../services/users.js'
import { serializeCreatedToken } from './serialize.js'

/** Personal access tokens, Forgejo style: /api/v1/users/{username}/tokens. */
const userTokens: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, services } = fastify
  const window = config.RATE_LIMIT_WINDOW * 1000
  // Password attempts are limited per username and, separately, per address.
  const limitPasswordAttempts = fastify.combinedRateLimit([
    { max: config.RATE_LIMIT_PASSWORD_PER_IP, timeWindow: window, keyGenerator: (request) => `password-ip:${request.ip}` },
    {
      max: config.RATE_LIMIT_PASSWORD_PER_USER,
      timeWindow: window,
      keyGenerator: (request: FastifyRequest) => `password-user:${String((request.params as { username?: string }).username ?? '').toLowerCase()}`
    }
  ])

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
    const authorization = parseAuthorization(request.headers.authorization)
    if (authorization?.scheme === 'bearer') {
      if (!config.BASIC_AUTH_ENABLED) throw new Errors.BasicAuthDisabled()
      throw new Errors.Forbidden('a token cannot create tokens: authenticate with the user\'s username and password (Basic)')
    }
    const user = await verifyPassword(request, request.params.username, authorization)
    const em = fastify.orm.em.fork()
    const application = await findInternalApplication(em)
    if (application === null) throw new Errors.InternalApplicationMissing()

    const actor = actorFromRequest(request, user.id, user.username)
    const issued = await em.transactional(async (tx) => {
      const owner = await tx.findOneOrFail(User, user.id)
      return await issueToken(tx, services.issuer, { owner, application, input: request.body, actor })
    })
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })

  /** Basic auth with the path user's password (argon2, rate-limited); 401/403 otherwise. */
  async function verifyPassword (request: FastifyRequest, username: string, authorization: Authorization | null): Promise<User> {
    if (!config.BASIC_AUTH_ENABLED) throw new Errors.BasicAuthDisabled()
    if (authorization?.scheme !== 'basic') {
      throw withChallenge(new Errors.Unauthorized('Basic authentication with the user\'s username and password is required'), BASIC_CHALLENGE)
    }
    if (authorization.username.toLowerCase() !== username.toLowerCase()) {
      throw new Errors.Forbidden(`the credentials are not those of ${username}`)
    }
    const user = await findUserByUsername(fastify.orm.em.fork(), username, { withPassword: true })
    if (!await services.hasher.verify(user?.passwordHash, authorization.password) || user === null) {
      fastify.auditFailedAuthentication(request, username, 'invalid username or password')
      throw withChallenge(new Errors.Unauthorized('invalid username or password'), BASIC_CHALLENGE)
    }
    if (!user.isActive()) throw new Errors.Forbidden(`the account ${user.username} is suspended`)
    return user
  }

  /**
   * The path user, authenticated by their password (Basic) or by one of their own tokens
   * holding `scope`. Another user's token is a 403.
   */
  function ownerAuthentication (scope: string) {
    const requireToken = fastify.requireUserToken(scope)
    return async function authenticateOwner (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const { username } = request.params as { username: string }
      const authorization = parseAuthorization(request.headers.authorization)
      if (authorization?.scheme === 'bearer') {
        await requireToken(request, reply)
        const principal = request.principal as Principal
        if (principal.user.username.toLowerCase() !== username.toLowerCase()) {
          throw new Errors.Forbidden(`the token does not belong to ${username}`)
        }
        return
      }
      if (authorization === null && !config.BASIC_AUTH_ENABLED) {
        throw withChallenge(new Errors.Unauthorized(`this route needs one of ${username}'s tokens with the ${scope} scope`), bearerChallenge())
      }
      await limitPasswordAttempts(request, reply)
      const user = await verifyPassword(request, username, authorization)
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
      querystring: Type.Object({ ...PageQuery.properties, state: TokenFilterQuery.properties.state }),
      response: { 200: Type.Array(Type.Ref('TokenView')), ...problems(400, 401, 403, 429) }
    },
    preHandler: ownerAuthentication('read:tokens')
  }, async function (request, reply) {
    const { page = 1, limit = 20, state } = request.query
    const user = (request.principal as Principal).user
    const filter = state === undefined ? { revokedAt: null } : tokenFilterQuery({ state })
    const { items, total } = await listTokensByPage(fastify.orm.em.fork(), { $and: [{ user: user.id }, filter] }, page, limit)
    reply.header('x-total-count', String(total)).links(request, pageLinks(page, limit, total))
    const now = new Date()
    return items.map((token) => toTokenView(token, now))
  })

  fastify.delete('/api/v1/users/:username/tokens/:token', {
    schema: {
      tags: ['tokens'],
      summary: 'Revoke one of a user\'s tokens by id, or else by name',
      description: 'Basic authentication with the user\'s password, or one of the user\'s own tokens with `write:tokens`. 404 when nothing matches; 422 when the value is one token\'s id and another\'s name, or names several tokens.',
      security: [{ basicAuth: [] }, { bearerAuth: [] }],
      params: UserTokenParams,
      response: { 204: Type.Null(), ...problems(400, 401, 403, 404, 422, 429) }
    },
    preHandler: ownerAuthentication('write:tokens')
  }, async function (request, reply) {
    const principal = request.principal as Principal
    const em = fastify.orm.em.fork()
    const token = await findTokenByReference(em, principal.user, request.params.token)
    await revokeAndForget(em, services.invalidation, token, principal.actor, 'revoked by its owner')
    return reply.code(204).send(null)
  })
}

export default userTokens
