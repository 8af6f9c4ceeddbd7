import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Optional(Type.Object({
    database: Type.Union([Type.Literal('ok'), Type.Literal('unreachable')]),
    migrations: Type.Union([Type.Literal('ok'), Type.Literal('pending'), Type.Literal('unknown')]),
    invalidation: Type.Union([Type.Literal('listening'), Type.Literal('reconnecting'), Type.Literal('local')], {
      description: '`listening`: changes made on other replicas reach this cache at once; `reconnecting`: the listener is down and cache lifetimes are cut to CACHE_DEGRADED_TTL (still ready); `local`: the embedded database, one process, nothing to listen for'
    })
  }))
})

/**
 * GET /healthz (the process is up) and GET /readyz (database reachable within DATABASE_TIMEOUT_MS,
 * migrations applied). Readiness turns red while the database is unreachable and green again
 * by itself when it returns; the load balancer stops sending requests meanwhile, and the
 * instance still answers cached tokens for whoever reaches it.
 */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
  const { listener, query } = fastify.services
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
      await query(undefined, 'select 1', [])
      if (!migrationsApplied) migrationsApplied = (await fastify.orm.migrator.getPending()).length === 0
      migrations = migrationsApplied ? 'ok' : 'pending'
    } catch {
      database = 'unreachable'
    }
    const ready = database === 'ok' && migrations === 'ok'
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: { database, migrations, invalidation } })
  })
}

export default health
