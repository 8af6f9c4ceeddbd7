import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FilterQuery } from '@mikro-orm/core'
import { AuditEvent } from '../../entities/audit-event.js'
import { problems } from '../../../schemas/common.js'
import { AuditEventViewList, AuditListQuery } from '../../../schemas/admin.js'
import { isUuid } from '../../services/ids.js'
import { keysetLinks, newestFirst, planKeyset } from '../../services/pagination.js'
import { toAuditView } from '../../views.js'

/** GET /api/v1/admin/audit — the append-only audit log, newest first, keyset-paginated. */
const adminAudit: FastifyPluginAsyncTypebox = async function (fastify) {
  fastify.get('/api/v1/admin/audit', {
    schema: {
      tags: ['admin'],
      summary: 'Read the audit log (keyset pagination with a Link header; filters)',
      description: 'Newest first. `max_id` pages back in time, `min_id` forward, `since_id` gives the newest events after an id. Filters: actor (label or id), target (id or label), action (`token.revoked`, or a family `token.*`), created_after / created_before.',
      security: [{ bearerAuth: [] }],
      querystring: AuditListQuery,
      response: { 200: AuditEventViewList, ...problems(400, 401, 403) }
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
