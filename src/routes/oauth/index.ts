import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import { oauthErrorFrame } from '../../http/error-reply.js'
import { requireFormBody } from '../../http/form.js'
import discovery from './discovery.js'
import introspect from './introspect.js'
import jwks from './jwks.js'
import revoke from './revoke.js'
import tokenInfo from './token-info.js'
import token from './token.js'

/** A POST to an OAuth endpoint carries a form (RFC 6749 §3.2): checked before its body is read. */
function formBodies (route: RouteOptions): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  if (!methods.includes('POST')) return
  const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
  route.onRequest = [requireFormBody, ...existing]
}

/**
 * The OAuth endpoints (RFC 6749, 7009, 7662, 8414, Doorkeeper's token info, the JWKS), framed
 * once for the folder: RFC 6749 error shapes, form bodies on every POST.
 */
const oauth: FastifyPluginAsync = async function (fastify) {
  fastify.addHook('onRoute', oauthErrorFrame)
  fastify.addHook('onRoute', formBodies)
  await fastify.register(introspect)
  await fastify.register(tokenInfo)
  await fastify.register(token)
  await fastify.register(revoke)
  await fastify.register(discovery)
  await fastify.register(jwks)
}

export default oauth
