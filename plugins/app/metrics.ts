import { timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify'
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client'
import { Errors } from '../../src/errors.js'
import { parseAuthorization } from '../../src/http/credentials.js'
import { LatencyHistogram } from '../../src/services/latency-histogram.js'
import { problems } from '../../schemas/common.js'
import { MetricsText } from '../../schemas/health.js'

/** Latency buckets (seconds): the hot path lives in the first few, argon2 and outages in the last. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * GET /metrics in the Prometheus text format, from a registry of this instance's own (tests
 * build many instances in one process). Per-request cost is one observation of the route's own
 * latency recorder (src/services/latency-histogram.ts), attached to each route as it is
 * declared; everything else (cache, invalidation, validation
 * outcomes, database pool) is read from plain counters only when scraped.
 */
export default fp(async function metrics (fastify) {
  const { config } = fastify
  if (!config.METRICS_ENABLED) return
  const { cache, clients, counters, invalidation, listener, store } = fastify.services
  const register = new Registry()
  collectDefaultMetrics({ register, prefix: 'tessera_' })

  const DURATION = 'tessera_http_request_duration_seconds'
  const latency = new LatencyHistogram(BUCKETS)
  const durationHelp = 'Time from request received to response sent, per route (the count is the request rate)'
  register.registerMetric({
    name: DURATION,
    help: durationHelp,
    type: 'histogram',
    aggregator: 'sum',
    async get () { return { name: DURATION, help: durationHelp, type: 'histogram', aggregator: 'sum', values: latency.values(DURATION) } },
    reset () {}
  } as unknown as Metric)
  // Each route gets its recorder when declared: no label lookup per request.
  fastify.addHook('onRoute', function recordLatency (route) {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const recorders = new Map(methods.map((method) => [method, latency.route(method, route.url)]))
    const record: onResponseHookHandler = function (request, reply, done) {
      recorders.get(request.method)?.(reply.statusCode, reply.elapsedTime / 1000)
      done()
    }
    route.onResponse = route.onResponse === undefined ? [record] : [...(Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse]), record]
  })
  // Requests no route matched (scanners, typos), under route="unmatched".
  const unmatched = new Map<string, (statusCode: number, seconds: number) => void>()
  fastify.addHook('onResponse', function recordUnmatched (request, reply, done) {
    if (request.is404) {
      let record = unmatched.get(request.method)
      if (record === undefined) {
        record = latency.route(request.method, 'unmatched')
        unmatched.set(request.method, record)
      }
      record(reply.statusCode, reply.elapsedTime / 1000)
    }
    done()
  })

  register.registerMetric(new Counter({
    name: 'tessera_token_validations_total',
    help: 'Answers of the validation endpoints: active token, inactive (unknown, expired, revoked, not visible to the caller), or error (database unavailable)',
    labelNames: ['endpoint', 'outcome'] as const,
    registers: [],
    collect () {
      this.reset()
      for (const [endpoint, outcomes] of Object.entries(counters.validation)) {
        for (const [outcome, count] of Object.entries(outcomes)) this.inc({ endpoint, outcome }, count)
      }
    }
  }))

  const counter = (name: string, help: string, read: () => number): void => {
    register.registerMetric(new Counter({ name, help, registers: [], collect () { this.reset(); this.inc(read()) } }))
  }
  const gauge = (name: string, help: string, read: () => number): void => {
    register.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
  }
  counter('tessera_token_cache_hits_total', 'Token lookups answered from the cache (negative entries included)', () => cache.stats.hits)
  counter('tessera_token_cache_misses_total', 'Token lookups that went to the database', () => cache.stats.misses)
  counter('tessera_token_cache_evictions_total', 'Cache entries evicted to stay within CACHE_MAX_ENTRIES / CACHE_MAX_BYTES', () => cache.stats.evictions)
  gauge('tessera_token_cache_entries', 'Entries in the token cache', () => cache.size)
  gauge('tessera_client_credential_cache_entries', 'Verified client credentials in the cache', () => clients.size)
  counter('tessera_cache_invalidations_published_total', 'Changes announced to the other replicas', () => invalidation.stats.published)
  counter('tessera_cache_invalidations_received_total', 'Changes received from the other replicas', () => invalidation.stats.received)
  counter('tessera_cache_invalidation_publish_failures_total', 'Changes that could not be announced', () => invalidation.stats.publishFailures)
  register.registerMetric(invalidation.lag)
  gauge('tessera_cache_invalidation_listening', '1 while the invalidation listener is connected, 0 while it reconnects (absent on the embedded database)', () => listener === null ? 1 : listener.state === 'listening' ? 1 : 0)

  register.registerMetric(new Gauge({
    name: 'tessera_db_pool_connections',
    help: 'Database pool connections: total open, idle, and requests waiting for one',
    labelNames: ['state'] as const,
    registers: [],
    async collect () {
      const pool = await store.pool()
      this.set({ state: 'total' }, pool.totalCount)
      this.set({ state: 'idle' }, pool.idleCount)
      this.set({ state: 'waiting' }, pool.waitingCount)
    }
  }))
  const { sharedCounters } = fastify.services
  if (sharedCounters !== null) {
    gauge('tessera_redis_up', '1 while the rate limits count in Redis (REDIS_URL), 0 while it is unreachable and they count in this process', () => sharedCounters.state === 'up' ? 1 : 0)
    counter('tessera_rate_limit_local_counts_total', 'Rate-limit counts made in this process because Redis was unreachable or did not answer in REDIS_TIMEOUT_MS', () => sharedCounters.stats.localFallbacks)
  }
  gauge('tessera_db_pool_max', 'DATABASE_POOL_MAX (1 on the embedded database)', () => config.embeddedDatabase ? 1 : config.DATABASE_POOL_MAX)

  const expected = config.METRICS_TOKEN !== '' ? Buffer.from(config.METRICS_TOKEN) : null
  async function requireMetricsToken (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    if (expected === null) return
    const authorization = parseAuthorization(request.headers.authorization)
    const given = authorization?.scheme === 'bearer' ? Buffer.from(authorization.token) : null
    if (given === null || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new Errors.MetricsTokenRequired()
    }
  }

  fastify.get('/metrics', {
    logLevel: 'warn',
    onRequest: requireMetricsToken,
    schema: {
      tags: ['health'],
      summary: 'Prometheus metrics',
      description: 'Prometheus text format: request latency histograms per route (their counts are the request rates), validation outcomes, token-cache hits, misses, evictions and size, invalidations published and received and their lag from another replica (`tessera_cache_invalidation_lag_seconds`), listener state, database pool usage, with REDIS_URL whether rate limits count in Redis, and the process metrics of prom-client. With METRICS_TOKEN set, it needs `Authorization: Bearer <METRICS_TOKEN>`.',
      security: config.METRICS_TOKEN !== '' ? [{ bearerAuth: [] }] : [],
      response: {
        200: MetricsText,
        ...problems(401)
      }
    }
  }, async (_request, reply) => {
    const body = await register.metrics()
    return await reply.header('cache-control', 'no-store').type(register.contentType).send(body)
  })
}, { name: 'metrics', dependencies: ['services'] })
