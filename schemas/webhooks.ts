import { Type } from 'typebox'
import { EVENT_TYPES } from '../src/services/events.js'
import { Nullable } from './listing.js'

const DateTime = Type.String({ format: 'date-time' })
const EventType = Type.Union(EVENT_TYPES.map((type) => Type.Literal(type)))
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'Absolute http(s) URL the events are POSTed to' })
const Events = Type.Array(EventType, { maxItems: EVENT_TYPES.length, uniqueItems: true, description: 'Event types delivered; empty or absent: every type' })

export const WebhookView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  url: Type.String(),
  description: Nullable(Type.String()),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  created_at: DateTime
}, { title: 'WebhookView' })

export const WebhookWithSecret = Type.Object({
  ...WebhookView.properties,
  secret: Type.String({ description: 'The Standard Webhooks signing secret (whsec_…): shown once' })
}, { title: 'WebhookWithSecret' })

export const CreateWebhookBody = Type.Object({
  url: Url,
  events: Type.Optional(Events),
  description: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  enabled: Type.Optional(Type.Boolean({ default: true }))
}, { additionalProperties: false })

export const UpdateWebhookBody = Type.Object({
  url: Type.Optional(Url),
  events: Type.Optional(Events),
  description: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  enabled: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const WebhookParams = Type.Object({ id: Type.String({ format: 'uuid' }) })

export const DeliveryQuery = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 }))
})

export const DeliveryView = Type.Object({
  id: Type.String(),
  event_id: Type.String({ description: 'Sent as webhook-id: the same on every attempt' }),
  event_type: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  last_attempt_at: Nullable(DateTime),
  next_attempt_at: Nullable(DateTime),
  last_status: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  created_at: DateTime
})
