import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors } from '../../errors.js'
import { IntrospectBody } from '../../../schemas/oauth.js'
import { oauthErrors } from '../../../schemas/common.js'
import { introspectionResponse, INACTIVE, type IntrospectionBody } from '../../services/introspection.js'
import { JWT_TYPES } from '../../services/signing-keys.js'
import { requireFormBody } from './form.js'
import { callerRateLimitKey } from '../../../plugins/app/authentication.js'

/** RFC 9701 §4: the media type a caller asks for to get a signed answer. */
export const SIGNED_INTROSPECTION_TYPE = 'application/token-introspection+jwt'

/**
 * POST /oauth/introspect — RFC 7662. The hot path: checksum, digest and a cache hit in the
 * common case; the database only on a miss; never argon2 (client credentials are cached).
 * With `Accept: application/token-introspection+jwt` the same answer comes signed (RFC 9701).
 */
const introspect: FastifyPluginAsyncTypebox = async function (fastify) {
  const { resolver, keys, counters } = fastify.services
  const issuer = fastify.config.publicUrl

  /** RFC 9701 §5: the answer as the `token_introspection` claim of a JWT addressed to the caller. */
  function signedAnswer (answer: IntrospectionBody, audience: string): string {
    return keys.sign(JWT_TYPES.introspection, {
      iss: issuer,
      aud: audience,
      iat: Math.floor(Date.now() / 1000),
      token_introspection: answer
    })
  }

  fastify.post('/oauth/introspect', {
    schema: {
      tags: ['oauth'],
      summary: 'Introspect a token (RFC 7662)',
      description: 'The caller authenticates as an application holding the `introspect` scope (client_secret_basic, or client_id and client_secret in the form: client_secret_post) or with a bearer token holding `introspect`. Anything but an active token — unknown, malformed, expired, revoked, owner suspended — is exactly `{"active": false}`. ' +
        'With `Accept: application/token-introspection+jwt` the answer is a JWT (RFC 9701) signed with a key from `/.well-known/jwks.json`: header `typ: token-introspection+jwt`, claims `iss`, `aud` (the caller\'s client_id), `iat` and `token_introspection` (the JSON answer). Errors stay JSON.',
      security: [{ clientSecretBasic: [] }, { bearerAuth: [] }, {}],
      consumes: ['application/x-www-form-urlencoded'],
      body: IntrospectBody,
      response: {
        200: {
          description: 'The introspection answer, as JSON or (when asked for) as a signed JWT',
          content: {
            'application/json': { schema: { $ref: 'Introspection' } },
            [SIGNED_INTROSPECTION_TYPE]: { schema: { type: 'string', description: 'A compact JWS (RFC 9701)' } }
          }
        },
        ...oauthErrors(400, 401, 403, 413, 415, 429, 503)
      }
    },
    // Thousands of answers a second: no info line per request (GET /metrics counts them); failures still log.
    logLevel: 'warn',
    config: {
      oauthErrors: true,
      rateLimit: {
        // After body parsing: the key of a client_secret_post caller is the client_id in the form.
        hook: 'preValidation',
        max: fastify.config.RATE_LIMIT_INTROSPECT_PER_CLIENT,
        timeWindow: fastify.config.RATE_LIMIT_WINDOW * 1000,
        keyGenerator: callerRateLimitKey
      }
    },
    preValidation: requireFormBody
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const caller = await fastify.authenticateCaller(request, request.body)
    const scopes = caller.kind === 'client' ? caller.client.scopes : caller.token.effectiveScope.split(' ')
    if (!scopes.includes('introspect')) {
      throw Object.assign(new Errors.Forbidden('the caller is not allowed to introspect tokens (it lacks the introspect scope)'), { oauthError: 'insufficient_scope' })
    }
    let record
    try {
      record = await resolver.resolve(request.body.token)
    } catch (error) {
      counters.validated('introspect', 'error')
      throw error
    }
    if (caller.kind === 'token' && record !== null && record.id === caller.token.id) {
      // RFC 7662 §2.1: a protected resource does not introspect the token it authenticated with.
      throw Object.assign(new Errors.BadRequest('a token cannot be used to introspect itself'), { oauthError: 'invalid_request' })
    }
    let answer: IntrospectionBody = INACTIVE
    if (record !== null) {
      const policy = caller.kind === 'client'
        ? { audiences: caller.client.introspectionAudiences, scopes: caller.client.introspectionScopes }
        : undefined
      answer = introspectionResponse(record, issuer, policy)
      // The holder's address is unknown here (the caller is a resource server): time only.
      if (answer.active) fastify.usage.record(record.id, null)
    }
    counters.validated('introspect', answer.active ? 'active' : 'inactive')
    if (!wantsSignedAnswer(request.headers.accept)) return answer
    const audience = caller.kind === 'client' ? caller.client.clientId : caller.token.clientId
    return await reply.type(SIGNED_INTROSPECTION_TYPE).send(signedAnswer(answer, audience))
  })
}

/** Whether the Accept header asks for application/token-introspection+jwt (with a non-zero q). */
export function wantsSignedAnswer (accept: string | undefined): boolean {
  if (accept === undefined || !accept.toLowerCase().includes(SIGNED_INTROSPECTION_TYPE)) return false
  return accept.split(',').some((range) => {
    const [type = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase())
    if (type !== SIGNED_INTROSPECTION_TYPE) return false
    const q = parameters.find((parameter) => parameter.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

export default introspect
