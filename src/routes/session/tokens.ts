import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors } from '../../errors.js'
import { problems } from '../../../schemas/common.js'
import { TokenPolicy } from '../../../schemas/session.js'
import { CreateTokenBody } from '../../../schemas/tokens.js'
import { findInternalApplication } from '../../services/applications.js'
import { parseNoticeDays } from '../../services/expiry-notices.js'
import { issuePersonalToken, type LifetimeLimits } from '../../services/tokens.js'
import { serializeCreatedToken } from '../../views.js'

const DAY = 86400
const COMMON_LIFETIMES = [DAY, 7 * DAY, 30 * DAY, 90 * DAY, 365 * DAY]

/** "1 day", "30 days", "1 year", "12 hours", "90 seconds". */
function describeDuration (seconds: number): string {
  const units: Array<[number, string]> = [[365 * DAY, 'year'], [DAY, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']]
  for (const [size, unit] of units) {
    if (seconds % size === 0) {
      const count = seconds / size
      return `${count} ${unit}${count === 1 ? '' : 's'}`
    }
  }
  return `${seconds} seconds`
}

/**
 * Lifetimes to offer people, shortest first: the common ones within the maximum, plus the
 * default and the maximum themselves, and "never" only when no maximum is configured.
 */
export function expiryPresets (limits: LifetimeLimits): Array<{ label: string, expires_in: number | null, default: boolean }> {
  const max = limits.maxLifetime
  const lifetimes = new Set(COMMON_LIFETIMES.filter((seconds) => max === 0 || seconds <= max))
  if (limits.defaultLifetime > 0) lifetimes.add(limits.defaultLifetime)
  if (max > 0) lifetimes.add(max)
  const presets = [...lifetimes].sort((a, b) => a - b).map((seconds) => ({
    label: `${describeDuration(seconds)}${max > 0 && seconds === max && !COMMON_LIFETIMES.includes(seconds) ? ' (the maximum)' : ''}`,
    expires_in: seconds as number | null,
    default: seconds === limits.defaultLifetime
  }))
  if (max === 0) presets.push({ label: 'Never', expires_in: null, default: limits.defaultLifetime === 0 })
  return presets
}

/**
 * What the web page (or any client) needs to offer token creation — GET /api/v1/token-policy —
 * and creation for the signed-in person: POST /api/v1/tokens, with the same body and answer as
 * the password route, through the same service.
 */
const sessionTokens: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, services } = fastify
  const limits = services.issuer.limits
  const noticeDays = parseNoticeDays(config.TOKEN_EXPIRY_NOTICE_DAYS)

  fastify.get('/api/v1/token-policy', {
    schema: {
      tags: ['tokens'],
      summary: 'What a new personal token may be: scopes with descriptions, lifetimes, and whether creation is possible',
      description: 'Public: the same facts as the discovery document and the configuration, put for a person choosing a token.',
      security: [],
      response: { 200: TokenPolicy }
    }
  }, async function (_request, reply) {
    const internal = await findInternalApplication(fastify.orm.em.fork())
    reply.header('cache-control', 'no-cache')
    return {
      scopes: config.scopes.describe(),
      default_lifetime: limits.defaultLifetime,
      max_lifetime: limits.maxLifetime,
      expiry_presets: expiryPresets(limits),
      rotation_max_grace: config.TOKEN_ROTATION_MAX_GRACE,
      last_used_precision: config.LAST_USED_FLUSH_INTERVAL,
      internal_application: internal !== null,
      password_sign_in: config.BASIC_AUTH_ENABLED,
      expiry_notice_days: noticeDays
    }
  })

  fastify.post('/api/v1/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Create a personal access token for yourself, from the web session',
      description: 'Needs the web session (POST /api/v1/session: the password was verified at sign-in) and its CSRF token; a bearer token cannot mint a token (403). ' +
        'Same body and answer as `POST /api/v1/users/{username}/tokens`: the plaintext is in the response once, with `Cache-Control: no-store`.',
      security: [{ sessionCookie: [], csrfToken: [] }],
      body: CreateTokenBody,
      response: {
        201: { $ref: 'CreatedToken' },
        ...problems(400, 401, 403, 409, 413, 415, 503)
      }
    },
    onRequest: fastify.requireUser('write:tokens')
  }, async function (request, reply) {
    const principal = request.principal!
    if (principal.session === undefined) {
      throw new Errors.TokenCannotMintTokens('sign in to the web page, or use POST /api/v1/users/{username}/tokens with your password')
    }
    const issued = await fastify.orm.em.fork().transactional(async (tx) =>
      await issuePersonalToken(tx, services.issuer, { ownerId: principal.user.id, input: request.body, actor: principal.actor }))
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache').send(serializeCreatedToken(issued))
  })
}

export default sessionTokens
