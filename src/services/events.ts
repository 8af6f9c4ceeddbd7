import type { EntityManager } from '@mikro-orm/core'
import { Event } from '../entities/webhook.js'

/** Every event type Tessera emits: what a webhook endpoint can subscribe to. */
export const EVENT_TYPES = [
  'token.created', 'token.rotated', 'token.revoked', 'token.expiring', 'token.expired', 'token.leaked',
  'user.suspended', 'application.secret_rotated'
] as const

export type EventType = typeof EVENT_TYPES[number]

export function isEventType (value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value)
}

/**
 * Adds an event to `em`'s unit of work: written by the same flush, in the same transaction, as
 * the change it describes (the outbox), and delivered to the webhooks afterwards.
 */
export function recordEvent (em: EntityManager, type: EventType, data: Record<string, unknown>): Event {
  return em.create(Event, { type, data, dispatchedAt: null })
}
