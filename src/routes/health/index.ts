import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Optional(Type.Object({
    database: Type.Union([Type.Literal('ok'), Type.Literal('unreachable')]),
    migrations: Type.Union([Type.Literal('ok'), Type.Literal('pending'), Type.Literal('unknown')])
  }))
})

/** GET /healthz (the process is up) and GET /readyz (database reachable, migrations applied). */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
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
    try {
      await fastify.orm.em.getConnection().execute('select 1')
      if (!migrationsApplied) migrationsApplied = (await fastify.orm.migrator.getPending()).length === 0
      migrations = migrationsApplied ? 'ok' : 'pending'
    } catch {
      database = 'unreachable'
    }
    const ready = database === 'ok' && migrations === 'ok'
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: { database, migrations } })
  })
}

export default health
