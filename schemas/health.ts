import { Type } from 'typebox'

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Optional(Type.Object({
    database: Type.Union([Type.Literal('ok'), Type.Literal('unreachable')]),
    migrations: Type.Union([Type.Literal('ok'), Type.Literal('pending'), Type.Literal('unknown')]),
    invalidation: Type.Union([Type.Literal('listening'), Type.Literal('reconnecting'), Type.Literal('local')], {
      description: '`listening`: changes made on other replicas reach this cache at once; `reconnecting`: the listener is down and cache lifetimes are cut to CACHE_DEGRADED_TTL (still ready); `local`: the embedded database, one process, nothing to listen for'
    }),
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
