import fp from 'fastify-plugin'

/**
 * Echoes the request id (a sane incoming X-Request-Id, else a fresh UUID; see src/options.ts)
 * as X-Request-Id on every answer, so a caller can quote it and an operator find the log lines.
 */
export default fp(async function requestId (fastify) {
  fastify.addHook('onRequest', function echoRequestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'request-id' })
