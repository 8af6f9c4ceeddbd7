import { Type } from 'typebox'

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('unavailable')], {
    description: '`ok`: ready; `degraded`: ready without the database (READINESS_MODE=fleet, and no other replica reaches it either): cached tokens answer, anything else 503 at once; `unavailable`: not ready'
  }),
  checks: Type.Optional(Type.Object({
    database: Type.Union([Type.Literal('ok'), Type.Literal('unreachable')]),
    migrations: Type.Union([Type.Literal('ok'), Type.Literal('pending'), Type.Literal('unknown')]),
    invalidation: Type.Union([Type.Literal('listening'), Type.Literal('reconnecting'), Type.Literal('local')], {
      description: '`listening`: changes made on other replicas reach this cache at once; `reconnecting`: the listener is down and cache lifetimes are cut to CACHE_DEGRADED_TTL (still ready); `local`: the embedded database, one process, nothing to listen for'
    }),
    fleet: Type.Optional(Type.Union([Type.Literal('others-reach-database'), Type.Literal('none-reach-database'), Type.Literal('unknown')], {
      description: 'Only while this replica cannot reach the database (READINESS_MODE=fleet): whether other replicas could within the last 3 s (through Redis); `unknown` without REDIS_URL or with Redis unreachable'
    })),
    rate_limits: Type.Optional(Type.Union([Type.Literal('shared'), Type.Literal('local')], {
      description: 'Only with REDIS_URL. `shared`: rate limits count in Redis, for the whole cluster; `local`: Redis is unreachable and they count in this process meanwhile (readiness does not depend on it)'
    }))
  }))
})

/** GET /metrics answers text, not JSON. */
export const MetricsText = {
  description: 'Metrics in the Prometheus text format',
  content: { 'text/plain': { schema: { type: 'string' } } }
}
