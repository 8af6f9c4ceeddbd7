import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Errors, rateLimited, type TesseraError } from '../../src/errors.js'
import type { SharedCounters } from '../../src/services/shared-counters.js'
import { SharedRateLimitStore } from './rate-limit-store.js'

/** A limit counted under a key the handler knows only once it has authenticated the caller. */
export interface KeyedRateLimit {
  /** Counts one request under `key`; over the limit, throws 429 TESSERA_RATE_LIMITED with Retry-After. */
  enforce: (request: FastifyRequest, key: string) => Promise<void>
  /** Counts one event under `key` (a failure); says whether that made it exceed the limit, and whether this one crossed it. */
  count: (request: FastifyRequest, key: string) => Promise<{ exceeded: boolean, crossed: boolean, error: TesseraError }>
  /** Without counting: the 429 to answer when `key` has used up its allowance, else null. */
  exhausted: (request: FastifyRequest, key: string) => Promise<TesseraError | null>
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A hook enforcing several independent limits at once (for example per username and,
     * separately, per address); @fastify/rate-limit's own hook runs only one per request.
     */
    combinedRateLimit: (limits: Array<{ max: number, timeWindow: number, keyGenerator: (request: FastifyRequest) => string }>) =>
    (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    /** A limit checked inside a handler, on a key it knows only after authentication (the client it verified). */
    keyedRateLimit: (limit: { max: number, timeWindow: number, message?: string }) => KeyedRateLimit
  }
}

/**
 * @fastify/rate-limit, applied per route (global: false) or checked from handlers through the
 * decorators below. Every limit counts in one SharedRateLimitStore: in Redis when REDIS_URL is
 * set, shared by the replicas; in this process otherwise and while Redis is unreachable (a
 * BoundedRateLimitStore: junk keys cannot push a hot counter out). Answers 429 with Retry-After.
 */
export default fp<{ sharedCounters?: SharedCounters | null }>(async function rateLimiter (fastify, options) {
  await fastify.register(rateLimit, {
    global: false,
    store: SharedRateLimitStore.over(options.sharedCounters ?? undefined),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: (_request, context) => {
      return new Errors.RateLimited(`rate limit exceeded: at most ${context.max} requests in this window; retry in ${context.after}`)
    }
  })

  fastify.decorate('combinedRateLimit', function combinedRateLimit (limits) {
    const checks = limits.map((limit) => fastify.createRateLimit(limit))
    return async function enforceRateLimits (request) {
      for (const check of checks) {
        const result = await check(request)
        if (!result.isAllowed && result.isExceeded) throw rateLimited('too many attempts', result.max, result.timeWindow, result.ttlInSeconds)
      }
    }
  })

  fastify.decorate('keyedRateLimit', function keyedRateLimit ({ max, timeWindow, message = 'too many requests' }) {
    // createRateLimit takes its key from the request: the key the handler passes is handed over here.
    const keys = new WeakMap<FastifyRequest, string>()
    const check = fastify.createRateLimit({ max, timeWindow, keyGenerator: (request) => keys.get(request) ?? '' })
    async function apply (request: FastifyRequest, key: string, increment: boolean) {
      // The key generator runs synchronously when check() is called, so the next call may reuse the slot.
      keys.set(request, key)
      const result = await check(request, { increment })
      if (result.isAllowed) throw new Error('keyedRateLimit has no allow list')
      return result
    }
    return {
      async enforce (request, key) {
        const result = await apply(request, key, true)
        if (result.isExceeded) throw rateLimited(message, result.max, result.timeWindow, result.ttlInSeconds)
      },
      async count (request, key) {
        // The result says only whether the count is past the limit, not by how much: a read first tells the crossing.
        const before = await apply(request, key, false)
        const result = await apply(request, key, true)
        return {
          exceeded: result.isExceeded,
          crossed: result.isExceeded && !before.isExceeded,
          error: rateLimited(message, result.max, result.timeWindow, result.ttlInSeconds)
        }
      },
      async exhausted (request, key) {
        const result = await apply(request, key, false)
        return result.remaining > 0 ? null : rateLimited(message, result.max, result.timeWindow, result.ttlInSeconds)
      }
    }
  })
}, { name: 'rate-limit' })
