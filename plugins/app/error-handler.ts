import fp from 'fastify-plugin'
import { Errors } from '../../src/errors.js'
import { addressKey } from '../../src/http/address.js'
import { sendError } from '../../src/http/error-reply.js'

/**
 * The one error handler (src/http/error-reply.ts writes the shapes): RFC 9457 problem+json on
 * the REST API, RFC 6749 errors on OAuth routes, the challenge each error carries; and a
 * rate-limited 404 for unknown routes, in the same shapes.
 */
export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(sendError)

  fastify.setNotFoundHandler({
    preHandler: fastify.rateLimit({ max: 60, timeWindow: 60_000, keyGenerator: (request) => `not-found:${addressKey(request.ip)}` })
  }, function notFound (request, reply) {
    return sendError(new Errors.RouteNotFound(request.method, request.url.split('?')[0] ?? '/'), request, reply)
  })
}, { name: 'error-handler', dependencies: ['rate-limit'] })
