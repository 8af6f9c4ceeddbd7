import type { EntityManager } from '@mikro-orm/core'
import { AuditEvent } from '../entities/audit-event.js'
import { isEventType, recordEvent } from './events.js'
import { maskSecrets, maskSecretsDeep } from './secret-mask.js'

/** Who did something, and from where. */
export interface Actor {
  id: string | null
  /** A readable label: a username, `client:<client_id>`, `cli`, `system`, or `anonymous`. */
  label: string
  ip?: string | null
  userAgent?: string | null
}

export const SYSTEM_ACTOR: Actor = { id: null, label: 'system' }

export interface AuditTarget {
  type: 'user' | 'token' | 'application' | 'credential' | 'webhook'
  id?: string | null
  label?: string | null
}

export type AuditAction =
  | 'token.created' | 'token.rotated' | 'token.revoked' | 'token.leaked'
  | 'user.created' | 'user.updated' | 'user.suspended' | 'user.unsuspended' | 'user.deleted'
  | 'application.created' | 'application.updated' | 'application.deleted' | 'application.secret_rotated'
  | 'webhook.created' | 'webhook.updated' | 'webhook.deleted'
  | 'auth.failed'

/** Something that can write structured log lines (pino, or a fastify logger). */
export interface AuditLogger {
  info: (object: Record<string, unknown>, message: string) => void
}

/**
 * Adds an audit event to `em`'s unit of work: it is written by the same flush, inside the
 * same transaction, as the change it describes — or not at all. Labels, the user agent and
 * details can quote what a caller sent (a client secret sent as client_id, a token as a token
 * name): secrets of a recognisable shape are masked before the event is stored or logged.
 */
export function recordAudit (em: EntityManager, actor: Actor, action: AuditAction, target: AuditTarget, details?: Record<string, unknown>): AuditEvent {
  const event = em.create(AuditEvent, {
    actorId: actor.id,
    actor: maskSecrets(actor.label).slice(0, 100),
    action,
    targetType: target.type,
    targetId: target.id ?? null,
    target: target.label === undefined || target.label === null ? null : maskSecrets(target.label).slice(0, 200),
    ip: actor.ip ?? null,
    userAgent: actor.userAgent === undefined || actor.userAgent === null ? null : maskSecrets(actor.userAgent).slice(0, 300),
    details: details === undefined ? null : maskSecretsDeep(details)
  })
  // A change that is also an event of a token's life goes to the outbox in the same transaction.
  if (isEventType(action)) {
    recordEvent(em, action, {
      [event.targetType ?? 'target']: { id: event.targetId, name: event.target },
      actor: { id: event.actorId, label: event.actor },
      ...(event.details ?? {})
    })
  }
  return event
}

/** Logs committed audit events as structured lines (never with secrets: recordAudit masked them). */
export function logAudit (logger: AuditLogger, events: readonly AuditEvent[]): void {
  for (const event of events) {
    logger.info({
      audit: {
        id: event.id,
        action: event.action,
        actor: event.actor,
        actorId: event.actorId,
        targetType: event.targetType,
        targetId: event.targetId,
        target: event.target,
        ip: event.ip,
        details: event.details
      }
    }, `audit ${event.action}`)
  }
}
