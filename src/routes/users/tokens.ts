import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { User } from '../../entities/user.js'
import { Errors, withChallenge } from '../../errors.js'
import { problems } from '../../../schemas/common.js'
import { CreateTokenBody, UsernameParams } from '../../../schemas/tokens.js'
import { actorFromRequest, parseAuthorization } from '../../../plugins/app/authentication.js'
import { findInternalApplication } from '../../services/applications.js'
import { issueToken } from '../../services/tokens.js'
import { findUserByUsername } from '../../services/users.js'
import { serializeCreatedToken } from './serialize.js'

const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'

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
    if (!config.BASIC_AUTH_ENABLED) throw new Errors.BasicAuthDisabled()
    const authorization = parseAuthorization(request.headers.authorization)
    if (authorization?.scheme === 'bearer') {
      throw new Errors.Forbidden('a token cannot create tokens: authenticate with the user\'s username and password (Basic)')
    }
    if (authorization?.scheme !== 'basic') {
      throw withChallenge(new Errors.Unauthorized('Basic authentication with the user\'s username and password is required'), BASIC_CHALLENGE)
    }
    const { username } = request.params
    if (authorization.username.toLowerCase() !== username.toLowerCase()) {
      throw new Errors.Forbidden(`the credentials are not those of ${username}`)
    }

    const em = fastify.orm.em.fork()
    const user = await findUserByUsername(em, username, { withPassword: true })
    if (!await services.hasher.verify(user?.passwordHash, authorization.password) || user === null) {
      fastify.auditFailedAuthentication(request, username, 'invalid username or password')
      throw withChallenge(new Errors.Unauthorized('invalid username or password'), BASIC_CHALLENGE)
    }
    if (!user.isActive()) throw new Errors.Forbidden(`the account ${user.username} is suspended`)
    const application = await findInternalApplication(em)
    if (application === null) throw new Errors.InternalApplicationMissing()

    const actor = actorFromRequest(request, user.id, user.username)
    const issued = await em.transactional(async (tx) => {
      const owner = await tx.findOneOrFail(User, user.id)
      return await issueToken(tx, services.issuer, { owner, application, input: request.body, actor })
    })
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })
}

export default userTokens
