import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Event, WebhookDelivery, WebhookEndpoint } from '../../entities/webhook.js'
import { Errors } from '../../errors.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { CreateWebhookBody, DeliveryQuery, DeliveryView, UpdateWebhookBody, WebhookParams, WebhookView, WebhookWithSecret } from '../../../schemas/webhooks.js'
import { recordAudit } from '../../services/audit.js'
import { newWebhookSecret } from '../../services/webhooks.js'

const security = [{ bearerAuth: [] }]

function view (endpoint: WebhookEndpoint): { id: string, url: string, description: string | null, events: string[], enabled: boolean, created_at: string } {
  return { id: endpoint.id, url: endpoint.url, description: endpoint.description ?? null, events: endpoint.events, enabled: endpoint.enabled, created_at: endpoint.createdAt.toISOString() }
}

/** An absolute http(s) URL without credentials in it (they would be stored and shown in the clear). */
function checkUrl (url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new Errors.WebhookUrlInvalid(url)
  }
  if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.username !== '' || parsed.password !== '') throw new Errors.WebhookUrlInvalid(url)
  return parsed.toString()
}

/** Webhook endpoints and their delivery logs: /api/v1/admin/webhooks. */
const adminWebhooks: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services } = fastify

  async function findOr404 (em: ReturnType<typeof fastify.orm.em.fork>, id: string): Promise<WebhookEndpoint> {
    const endpoint = await em.findOne(WebhookEndpoint, id.toLowerCase())
    if (endpoint === null) throw new Errors.WebhookNotFound(id)
    return endpoint
  }

  fastify.post('/api/v1/admin/webhooks', {
    schema: {
      tags: ['admin'],
      summary: 'Register a webhook endpoint; its signing secret is in the answer once',
      description: 'Events are POSTed following the Standard Webhooks specification (webhook-id, webhook-timestamp, webhook-signature), at least once, retried with exponential backoff for WEBHOOK_RETRY_PERIOD.',
      security,
      body: CreateWebhookBody,
      response: { 201: WebhookWithSecret, ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const { body } = request
    const url = checkUrl(body.url)
    const secret = newWebhookSecret()
    const em = fastify.orm.em.fork()
    const endpoint = await em.transactional(async (tx) => {
      const created = tx.create(WebhookEndpoint, { url, description: body.description ?? null, events: body.events ?? [], enabled: body.enabled ?? true, secret: '' })
      created.secret = services.webhookSecrets.seal(created.id, secret)
      recordAudit(tx, request.principal!.actor, 'webhook.created', { type: 'webhook', id: created.id, label: url }, { events: created.events, enabled: created.enabled })
      return created
    })
    return reply.code(201).header('cache-control', 'no-store').send({ ...view(endpoint), secret })
  })

  fastify.get('/api/v1/admin/webhooks', {
    schema: { tags: ['admin'], summary: 'Webhook endpoints, oldest first', security, response: { 200: Type.Array(WebhookView), ...problems(401, 403) } }
  }, async function () {
    return (await fastify.orm.em.fork().find(WebhookEndpoint, {}, { orderBy: { id: 'asc' } })).map(view)
  })

  fastify.get('/api/v1/admin/webhooks/:id', {
    schema: { tags: ['admin'], summary: 'One webhook endpoint', security, params: WebhookParams, response: { 200: WebhookView, ...problems(400, 401, 403, 404) } }
  }, async function (request) {
    return view(await findOr404(fastify.orm.em.fork(), request.params.id))
  })

  fastify.patch('/api/v1/admin/webhooks/:id', {
    schema: { tags: ['admin'], summary: 'Change a webhook endpoint (URL, events, description, enabled)', security, params: WebhookParams, body: UpdateWebhookBody, response: { 200: WebhookView, ...problems(400, 401, 403, 404) } }
  }, async function (request) {
    const { body } = request
    const url = body.url === undefined ? undefined : checkUrl(body.url)
    const em = fastify.orm.em.fork()
    const endpoint = await em.transactional(async (tx) => {
      const found = await findOr404(tx, request.params.id)
      if (url !== undefined) found.url = url
      if (body.events !== undefined) found.events = body.events
      if (body.description !== undefined) found.description = body.description
      if (body.enabled !== undefined) found.enabled = body.enabled
      recordAudit(tx, request.principal!.actor, 'webhook.updated', { type: 'webhook', id: found.id, label: found.url }, { ...body })
      return found
    })
    return view(endpoint)
  })

  fastify.delete('/api/v1/admin/webhooks/:id', {
    schema: { tags: ['admin'], summary: 'Remove a webhook endpoint and its delivery log', security, params: WebhookParams, response: { 204: NoContent, ...problems(400, 401, 403, 404) } }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    await em.transactional(async (tx) => {
      const found = await findOr404(tx, request.params.id)
      recordAudit(tx, request.principal!.actor, 'webhook.deleted', { type: 'webhook', id: found.id, label: found.url })
      tx.remove(found)
    })
    return await reply.code(204).send(null)
  })

  fastify.get('/api/v1/admin/webhooks/:id/deliveries', {
    schema: {
      tags: ['admin'],
      summary: 'The delivery log of an endpoint, newest first: status, attempts, last answer or error',
      security,
      params: WebhookParams,
      querystring: DeliveryQuery,
      response: { 200: Type.Array(DeliveryView), ...problems(400, 401, 403, 404) }
    }
  }, async function (request) {
    const em = fastify.orm.em.fork()
    const endpoint = await findOr404(em, request.params.id)
    const deliveries = await em.find(WebhookDelivery, { endpoint, ...(request.query.status !== undefined ? { status: request.query.status } : {}) }, {
      orderBy: { createdAt: 'desc', id: 'desc' },
      limit: request.query.limit ?? 50,
      populate: ['event']
    })
    return deliveries.map((delivery) => ({
      id: delivery.id,
      event_id: (delivery.event as Event).id,
      event_type: (delivery.event as Event).type,
      status: delivery.status,
      attempts: delivery.attempts,
      last_attempt_at: delivery.lastAttemptAt?.toISOString() ?? null,
      next_attempt_at: delivery.status === 'pending' ? delivery.nextAttemptAt.toISOString() : null,
      last_status: delivery.lastStatus ?? null,
      last_error: delivery.lastError ?? null,
      created_at: delivery.createdAt.toISOString()
    }))
  })
}

export default adminWebhooks
