import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FilterQuery } from '@mikro-orm/core'
import { Type } from 'typebox'
import { AuditEvent } from '../../entities/audit-event.js'
import { problems } from '../../../schemas/common.js'
import { AuditQuery } from '../../../schemas/admin.js'
import { KeysetQuery } from '../../../schemas/listing.js'
import { isUuid } from '../../services/ids.js'
import { keysetLinks, newestFirst, planKeyset } from '../../services/pagination.js'

function toAuditView (event: AuditEvent) {
  return {
    id: event.id,
    created_at: event.createdAt.toISOString(),
    actor: event.actor,
    actor_id: event.actorId ?? null,
    action: event.action,
    target_type: event.targetType ?? null,
    target_id: event.targetId ?? null,
    target: event.target ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent ?? null,
    details: event.details ?? null
  }
}

/** GET /api/v1/admin/audit — the append-only audit log, newest first, keyset-paginated. */
const adminAudit: FastifyPluginAsyncTypebox = async function (fastify) {
  fastify.addHook('onRequest', fastify.requireAdmin)

  fastify.get('/api/v1/admin/audit', {
    schema: {
      tags: ['admin'],
      summary: 'Read the audit log (keyset pagination with a Link header; filters)',
      description: 'Newest first. `max_id` pages back in time, `min_id` forward, `since_id` gives the newest events after an id. Filters: actor (label or id), target (id or label), action (`token.revoked`, or a family `token.*`), created_after / created_before.',
      security: [{ bearerAuth: [] }],
      querystring: Type.Object({ ...KeysetQuery.properties, ...AuditQuery.properties }),
      response: { 200: Type.Array(Type.Ref('AuditEventView')), ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const { max_id: maxId, since_id: sinceId, min_id: minId, limit, actor, target, action, created_after: after, created_before: before } = request.query
    const plan = planKeyset({ max_id: maxId, since_id: sinceId, min_id: minId, limit })
    const and: Array<FilterQuery<AuditEvent>> = []
    if (Object.keys(plan.id).length > 0) and.push({ id: plan.id })
    if (actor !== undefined) and.push(isUuid(actor) ? { $or: [{ actorId: actor.toLowerCase() }, { actor }] } : { actor })
    if (target !== undefined) and.push({ $or: [{ targetId: isUuid(target) ? target.toLowerCase() : target }, { target }] })
    if (action !== undefined) and.push(action.endsWith('.*') ? { action: { $like: `${action.slice(0, -2)}.%` } } : { action })
    if (after !== undefined) and.push({ createdAt: { $gt: new Date(after) } })
    if (before !== undefined) and.push({ createdAt: { $lt: new Date(before) } })
    const rows = await fastify.orm.em.fork().find(AuditEvent, and.length > 0 ? { $and: and } : {}, { orderBy: { id: plan.order }, limit: plan.limit })
    const page = newestFirst(rows, plan)
    reply.links(request, keysetLinks(page, plan.limit))
    return page.map(toAuditView)
  })
}

export default adminAudit
