import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Static } from 'typebox'
import { Health } from '../../../schemas/health.js'

/**
 * GET /healthz and /livez (the process is up) and GET /readyz: ready when the database answers
 * within DATABASE_TIMEOUT_MS and the migrations are applied. While the database is unreachable
 * the answer depends on READINESS_MODE and on the rest of the fleet (see below and the README);
 * it recovers by itself when the database returns.
 */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
  const { listener, store, sharedCounters, fleet } = fastify.services
  const mode = fastify.config.READINESS_MODE
  let migrationsApplied = false

  // Liveness under both names: /healthz (this service's first) and /livez (Kubernetes' own).
  for (const url of ['/healthz', '/livez']) {
    fastify.get(url, {
      schema: { tags: ['health'], summary: 'Liveness: the process is up (nothing else is checked: a restart would not fix the database)', security: [], response: { 200: Health } },
      logLevel: 'warn'
    }, async () => ({ status: 'ok' as const }))
  }

  fastify.get('/readyz', {
    schema: { tags: ['health'], summary: 'Readiness: database reachable and migrations applied', security: [], response: { 200: Health, 503: Health } },
    logLevel: 'warn'
  }, async (_request, reply) => {
    let database: 'ok' | 'unreachable' = 'ok'
    let migrations: 'ok' | 'pending' | 'unknown' = 'unknown'
    const invalidation = listener === null ? 'local' as const : listener.state === 'listening' ? 'listening' as const : 'reconnecting' as const
    try {
      await store.ping()
      fleet?.reached()
      if (!migrationsApplied) migrationsApplied = (await fastify.orm.migrator.getPending()).length === 0
      migrations = migrationsApplied ? 'ok' : 'pending'
    } catch {
      database = 'unreachable'
    }
    const checks: Static<typeof Health>['checks'] & object = { database, migrations, invalidation }
    // With REDIS_URL: whether the limits count in Redis. Without it they count per process, and
    // the replica serves on either way: readiness never depends on Redis.
    if (sharedCounters !== null) checks.rate_limits = sharedCounters.state === 'up' ? 'shared' : 'local'
    if (database === 'ok') {
      const ready = migrations === 'ok'
      return await reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks })
    }
    // The database is unreachable from here. Strict: leave the load balancer. Fleet: leave it only
    // when others still reach the database (this replica is the one cut off); an outage every
    // replica sees keeps them all in it, answering cached tokens and a fast 503 for the rest —
    // better than a Service with no endpoints. Only a replica that was ready once stays in.
    if (mode === 'strict' || !migrationsApplied) return await reply.code(503).send({ status: 'unavailable', checks })
    const others = fleet === null ? null : await fleet.othersReachDatabase()
    checks.fleet = others === null ? 'unknown' : others ? 'others-reach-database' : 'none-reach-database'
    if (others === true) return await reply.code(503).send({ status: 'unavailable', checks })
    return await reply.code(200).send({ status: 'degraded', checks })
  })
}

export default health
