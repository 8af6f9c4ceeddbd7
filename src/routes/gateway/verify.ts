import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Errors } from '../../errors.js'
import { EXPIRATION_HEADER, expirationHeader } from '../../http/expiration.js'
import { oauthErrorFrame } from '../../http/error-reply.js'
import { oauthErrors } from '../../../schemas/common.js'
import { MAX_REQUIRED_SCOPES, RequirementHeaders, Verified, VerifyQuery } from '../../../schemas/gateway.js'
import type { TokenRecord } from '../../services/token-resolver.js'

/** RFC 6749 §3.3 scope-token: 1*NQCHAR. Also what keeps a required scope safe inside a quoted challenge. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/

/** Methods a gateway may forward as they are (Envoy keeps the client's method); HEAD comes with GET. */
const FORWARDED_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

const ACTIVE = Object.freeze({ active: true as const })

interface Requirements {
  scopes: string[]
  audience: string | undefined
}

/** Required scopes from repeated and/or space-separated values; 400 on anything that is not a scope token. */
function requiredScopes (values: readonly string[], separator: RegExp): string[] {
  const scopes = new Set<string>()
  for (const value of values) {
    const listed = value.split(separator).filter((scope) => scope !== '')
    if (listed.length === 0) throw new Errors.InvalidRequirement('scope must name at least one scope')
    for (const scope of listed) {
      if (!SCOPE_TOKEN.test(scope)) throw new Errors.InvalidRequirement('scope must be scope tokens (RFC 6749 §3.3) of at most 128 characters, separated by spaces')
      scopes.add(scope)
    }
  }
  if (scopes.size > MAX_REQUIRED_SCOPES) throw new Errors.InvalidRequirement(`at most ${MAX_REQUIRED_SCOPES} scopes may be required`)
  return [...scopes]
}

/**
 * GET /auth/verify — forward authentication for gateways (nginx `auth_request`, Traefik
 * ForwardAuth, Envoy ext_authz). The hot path of introspection with no caller to
 * authenticate: the resolver's cache in the common case, the database only on a miss.
 * Gateways read only the status and the headers, so the body stays tiny.
 */
const verify: FastifyPluginAsyncTypebox = async function (fastify) {
  fastify.addHook('onRoute', oauthErrorFrame)

  // A gateway may forward a POST's Content-Type without its body (nginx) or the method as it
  // came (Envoy): bodies are never read here, so none is parsed and none can fail to parse.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', function ignoreBody (_request, _payload, done) { done(null) })

  async function answer (request: FastifyRequest, reply: FastifyReply, requirements: Requirements): Promise<{ active: true }> {
    reply.header('cache-control', 'no-store')
    const record = await fastify.requireBearer(request, 'verify')
    // Kept in the (cached) record for the next hit: its scopes as a set, its identity headers.
    const identity = record.gatewayIdentity ??= { granted: new Set(record.effectiveScope.split(' ')), headers: identityHeaders(record) }
    const { granted } = identity
    const missing = requirements.scopes.filter((scope) => !granted.has(scope))
    if (missing.length > 0) throw new Errors.MissingRequiredScopes(missing.join(' '), requirements.scopes.join(' '))
    if (requirements.audience !== undefined && record.audience !== null && !record.audience.includes(requirements.audience)) {
      throw new Errors.AudienceNotAllowed()
    }

    reply.headers(identity.headers)
    return ACTIVE
  }

  const documentation = {
    tags: ['gateway'],
    summary: 'Forward authentication for gateways (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz)',
    description: 'Validates the forwarded `Authorization: Bearer …`. 200 with the identity in headers, oauth2-proxy style: ' +
      '`X-Auth-Request-User` (the username, or the client_id for an application\'s own token), `X-Auth-Request-Subject` ' +
      '(the user id, or the client_id), `X-Auth-Request-Scopes` (effective scopes, space-separated), `X-Auth-Request-Client-Id`, ' +
      '`X-Auth-Request-Token-Id`, and `Tessera-Token-Expiration` (`YYYY-MM-DD HH:MM:SS UTC`, as GitHub\'s ' +
      '`GitHub-Authentication-Token-Expiration`; absent for a token that never expires). 401 with `WWW-Authenticate` when the ' +
      'token is missing or not active; 403 `insufficient_scope` when `scope` or `audience` is not met. Any method is accepted, ' +
      'and `/auth/verify/{original path}` too (Envoy ext_authz with `path_prefix`), where the query is the client\'s and the ' +
      'requirements come from the `Tessera-Require-Scope` and `Tessera-Require-Audience` headers. See docs/gateways.md.',
    security: [{ bearerAuth: [] }],
    response: {
      200: Verified,
      ...oauthErrors(400, 401, 403, 503)
    }
  }
  // One line per failed check at info level would flood the log of a gateway's hot path.
  const options = { logLevel: 'warn' as const }

  fastify.get('/auth/verify', { ...options, schema: { ...documentation, querystring: VerifyQuery } }, async function (request, reply) {
    return await answer(request, reply, { scopes: requiredScopes(request.query.scope ?? [], / +/), audience: request.query.audience })
  })

  fastify.route({
    ...options,
    method: [...FORWARDED_METHODS],
    url: '/auth/verify',
    schema: { ...documentation, querystring: VerifyQuery, hide: true },
    handler: async function (request, reply) {
      return await answer(request, reply, { scopes: requiredScopes(request.query.scope ?? [], / +/), audience: request.query.audience })
    }
  })

  fastify.route({
    ...options,
    method: ['GET', ...FORWARDED_METHODS],
    url: '/auth/verify/*',
    schema: { ...documentation, headers: RequirementHeaders, hide: true },
    handler: async function (request, reply) {
      const scope = request.headers['tessera-require-scope']
      // Node joins repeated headers with ", "; scope tokens never contain a comma.
      return await answer(request, reply, { scopes: requiredScopes(scope === undefined ? [] : [scope], /[ ,]+/), audience: request.headers['tessera-require-audience'] })
    }
  })
}

function identityHeaders (record: TokenRecord): Record<string, string> {
  const headers: Record<string, string> = {
    'x-auth-request-user': record.username ?? record.clientId,
    'x-auth-request-subject': record.userId ?? record.clientId,
    'x-auth-request-scopes': record.effectiveScope,
    'x-auth-request-client-id': record.clientId,
    'x-auth-request-token-id': record.id
  }
  if (record.expiresAt !== null) headers[EXPIRATION_HEADER] = expirationHeader(record.expiresAt)
  return headers
}

export default verify
