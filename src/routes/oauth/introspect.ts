import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors, rateLimited } from '../../errors.js'
import { WindowBudget } from '../../services/budget.js'
import { authorizationOf } from '../../http/credentials.js'
import { IntrospectBody, IntrospectionAnswer, SIGNED_INTROSPECTION_TYPE } from '../../../schemas/oauth.js'
import { oauthErrors } from '../../../schemas/common.js'
import { introspectionResponse, INACTIVE, visibleTo, type IntrospectionBody, type IntrospectionPolicy } from '../../services/introspection.js'
import { JWT_TYPES } from '../../services/signing-keys.js'
import type { TokenRecord } from '../../services/token-resolver.js'
import { JSON_TYPE, type Caller } from '../../http/principal.js'

/**
 * POST /oauth/introspect — RFC 7662. The hot path: checksum, digest and a cache hit in the
 * common case; the database only on a miss; never argon2 (client credentials are cached).
 * With `Accept: application/token-introspection+jwt` the same answer comes signed (RFC 9701).
 */
const introspect: FastifyPluginAsyncTypebox = async function (fastify) {
  const { resolver, keys, counters, budgets } = fastify.services
  const issuer = fastify.config.publicUrl
  // Per authenticated caller, counted once it is authenticated: nobody can spend another's
  // allowance. An in-process budget: the hot path never waits on a rate-limit store.
  // Two budgets of the same size, so a client_id and a token id can never share an allowance.
  // With REDIS_URL they are the cluster's, reconciled in the background (BudgetSync).
  const perClient = new WindowBudget(fastify.config.RATE_LIMIT_INTROSPECT_PER_CLIENT, fastify.config.RATE_LIMIT_WINDOW * 1000)
  const perToken = new WindowBudget(fastify.config.RATE_LIMIT_INTROSPECT_PER_CLIENT, fastify.config.RATE_LIMIT_WINDOW * 1000)
  budgets?.register('introspect-client', perClient)
  budgets?.register('introspect-token', perToken)

  let inactiveJson: string | undefined

  /** RFC 9701 §5: the answer as the `token_introspection` claim of a JWT addressed to the caller. */
  function signedAnswer (answer: IntrospectionBody, audience: string): string {
    return keys.sign(JWT_TYPES.introspection, {
      iss: issuer,
      aud: audience,
      iat: Math.floor(Date.now() / 1000),
      token_introspection: answer
    })
  }

  /** The token's record when it is active and the caller may see it; null otherwise (anything inactive). */
  async function visibleRecord (token: string, policy: IntrospectionPolicy | undefined): Promise<TokenRecord | null> {
    const record = await resolver.resolve(token)
    return record !== null && visibleTo(record, policy) ? record : null
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
        200: IntrospectionAnswer,
        ...oauthErrors(400, 401, 403, 413, 415, 429, 503)
      }
    },
    // Thousands of answers a second: no info line per request (GET /metrics counts them); failures still log.
    logLevel: 'warn'
  }, async function (request, reply) {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { body } = request
    // A caller verified moments ago is known without a promise; anything else takes the full path.
    const verified = fastify.verifiedBasicClient(request, body)
    const caller: Caller = verified !== undefined ? { kind: 'client', client: verified } : await fastify.authenticateCaller(request, body)
    const wait = caller.kind === 'client' ? perClient.spend(caller.client.clientId) : perToken.spend(caller.token.id)
    if (wait > 0) throw rateLimited('rate limit exceeded for this caller', perClient.max, perClient.windowMs, wait)
    const scopes = caller.kind === 'client' ? caller.client.scopes : caller.token.effectiveScope.split(' ')
    if (!scopes.includes('introspect')) throw new Errors.IntrospectScopeRequired()
    if (caller.kind === 'token') {
      // RFC 7662 §2.1: a protected resource does not introspect the token it authenticated with.
      const bearer = authorizationOf(request)
      if (bearer?.scheme === 'bearer' && bearer.token === body.token) throw new Errors.SelfIntrospection()
    }
    // The caller's limits follow the caller however it authenticates: an application's own token
    // carries its application's limits; an administrator's personal token has none.
    const policy = caller.kind === 'client'
      ? { audiences: caller.client.introspectionAudiences, scopes: caller.client.introspectionScopes }
      : caller.token.introspectionPolicy ?? undefined
    const cached = resolver.cached(body.token)
    let record: TokenRecord | null
    if (cached === undefined) {
      record = await counters.outcome('introspect', visibleRecord(body.token, policy))
    } else {
      record = cached !== null && visibleTo(cached, policy) ? cached : null
      counters.validated('introspect', record === null ? 'inactive' : 'active')
    }
    // The holder's address is unknown here (the caller is a resource server): time only.
    if (record !== null) fastify.usage.record(record.id, null)
    if (!wantsSignedAnswer(request.headers.accept)) {
      // The answer's bytes, made once per cached record: the same for every caller allowed to
      // see it (a caller's limits only decide whether it sees the token at all), and a changed
      // token is a new record. Content-Type set on a string: Fastify sends it as it is.
      reply.type(JSON_TYPE)
      if (record === null) {
        inactiveJson ??= reply.serializeInput({ ...INACTIVE }, '200', 'application/json') as string
        return inactiveJson
      }
      record.introspectionJson ??= reply.serializeInput({ ...introspectionResponse(record, issuer) }, '200', 'application/json') as string
      return record.introspectionJson
    }
    const answer = record === null ? INACTIVE : introspectionResponse(record, issuer)
    const audience = caller.kind === 'client' ? caller.client.clientId : caller.token.clientId
    return await reply.type(SIGNED_INTROSPECTION_TYPE).send(signedAnswer(answer, audience))
  })
}

/** Whether the Accept header asks for application/token-introspection+jwt (with a non-zero q). */
function wantsSignedAnswer (accept: string | undefined): boolean {
  if (accept === undefined || !accept.toLowerCase().includes(SIGNED_INTROSPECTION_TYPE)) return false
  return accept.split(',').some((range) => {
    const [type = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase())
    if (type !== SIGNED_INTROSPECTION_TYPE) return false
    const q = parameters.find((parameter) => parameter.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

export default introspect
