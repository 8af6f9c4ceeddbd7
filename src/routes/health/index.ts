import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Health } from '../../../schemas/health.js'

/**
 * GET /healthz (the process is up) and GET /readyz (database reachable within DATABASE_TIMEOUT_MS,
 * migrations applied). Readiness turns red while the database is unreachable and green again
 * by itself when it returns; the load balancer stops sending requests meanwhile, and the
 * instance still answers cached tokens for whoever reaches it.
 */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
  const { listener, store, sharedCounters } = fastify.services
  let migrationsApplied = false

  fastify.get('/healthz', {
    schema: { tags: ['health'], summary: 'Liveness: the process is up', security: [], response: { 200: Health } },
    logLevel: 'warn'
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/readyz', {
    schema: { tags: ['health'], summary: 'Readiness: database reachable and migrations applied', security: [], response: { 200: Health, 503: Health } },
    logLevel: 'warn'
  }, async (_request, reply) => {
    let database: 'ok' | 'unreachable' = 'ok'
    let migrations: 'ok' | 'pending' | 'unknown' = 'unknown'
    const invalidation = listener === null ? 'local' as const : listener.state === 'listening' ? 'listening' as const : 'reconnecting' as const
    try {
      await store.ping()
      if (!migrationsApplied) migrationsApplied = (await fastify.orm.migrator.getPending()).length === 0
      migrations = migrationsApplied ? 'ok' : 'pending'
    } catch {
      database = 'unreachable'
    }
    const ready = database === 'ok' && migrations === 'ok'
    const checks = { database, migrations, invalidation }
    // With REDIS_URL: whether the limits count in Redis. Without it they count per process, and
    // the replica serves on either way: readiness never depends on Redis.
    if (sharedCounters !== null) Object.assign(checks, { rate_limits: sharedCounters.state === 'up' ? 'shared' : 'local' })
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks })
  })
}

export default health
