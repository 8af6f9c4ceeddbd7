import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Errors } from '../../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A hook enforcing several independent limits at once (for example per username and,
     * separately, per address); @fastify/rate-limit's own hook runs only one per request.
     */
    combinedRateLimit: (limits: Array<{ max: number, timeWindow: number, keyGenerator: (request: FastifyRequest) => string }>) =>
    (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/**
 * @fastify/rate-limit, applied per route (global: false): the password route and the
 * introspection endpoint declare their own limits and keys. Answers 429 with Retry-After.
 */
export default fp(async function rateLimiter (fastify) {
  await fastify.register(rateLimit, {
    global: false,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: (_request, context) => {
      return new Errors.RateLimited(`rate limit exceeded: at most ${context.max} requests in this window; retry in ${context.after}`)
    }
  })

  fastify.decorate('combinedRateLimit', function combinedRateLimit (limits) {
    const checks = limits.map((limit) => fastify.createRateLimit(limit))
    return async function enforceRateLimits (request, reply) {
      for (const check of checks) {
        const result = await check(request)
        if (!result.isAllowed && result.isExceeded) {
          reply.header('retry-after', String(result.ttlInSeconds))
          throw new Errors.RateLimited(`too many attempts: at most ${result.max} in ${Math.round(result.timeWindow / 1000)} seconds; retry in ${result.ttlInSeconds} seconds`)
        }
      }
    }
  })
}, { name: 'rate-limit' })
