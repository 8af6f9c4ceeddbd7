import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'

/**
 * An event of a token's or user's life (the outbox): written in the same transaction as the
 * change it describes, then fanned out to the webhook endpoints that want it (`dispatchedAt`).
 */
export const EventSchema = defineEntity({
  name: 'Event',
  extends: BaseEntity,
  tableName: 'events',
  properties: {
    type: p.string().length(50),
    data: p.json<Record<string, unknown>>(),
    // Null until the dispatcher has created this event's deliveries.
    dispatchedAt: p.datetime().nullable().index()
  }
})

export class Event extends EventSchema.class {}

EventSchema.setClass(Event)

/** A receiver registered through the admin API, following the Standard Webhooks specification. */
export const WebhookEndpointSchema = defineEntity({
  name: 'WebhookEndpoint',
  extends: BaseEntity,
  tableName: 'webhook_endpoints',
  properties: {
    url: p.string().length(2048),
    description: p.string().length(200).nullable(),
    // Event types delivered; empty: every type.
    events: p.array(),
    // The signing secret (`whsec_…`), sealed like the signing keys (`aes-256-gcm:…` or `plain:…`).
    secret: p.text().hidden(),
    enabled: p.boolean()
  }
})

export class WebhookEndpoint extends WebhookEndpointSchema.class {}

WebhookEndpointSchema.setClass(WebhookEndpoint)

export const DELIVERY_STATES = ['pending', 'succeeded', 'failed'] as const

/** One event for one endpoint: attempted until it succeeds or WEBHOOK_RETRY_PERIOD has passed. */
export const WebhookDeliverySchema = defineEntity({
  name: 'WebhookDelivery',
  extends: BaseEntity,
  tableName: 'webhook_deliveries',
  properties: {
    endpoint: () => p.manyToOne(WebhookEndpointSchema).deleteRule('cascade').index(),
    event: () => p.manyToOne(EventSchema).deleteRule('cascade').index(),
    status: p.enum(DELIVERY_STATES),
    attempts: p.integer(),
    // When the next attempt is due; while an attempt runs, the end of its lease.
    nextAttemptAt: p.datetime(),
    lastAttemptAt: p.datetime().nullable(),
    lastStatus: p.integer().nullable(),
    lastError: p.string().length(500).nullable()
  },
  indexes: [{ properties: ['status', 'nextAttemptAt'] }]
})

export class WebhookDelivery extends WebhookDeliverySchema.class {}

WebhookDeliverySchema.setClass(WebhookDelivery)
