import type { EntityManager } from '@mikro-orm/core'
import { AuditEvent } from '../entities/audit-event.js'

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
  type: 'user' | 'token' | 'application' | 'credential'
  id?: string | null
  label?: string | null
}

export type AuditAction =
  | 'token.created' | 'token.rotated' | 'token.revoked'
  | 'user.created' | 'user.updated' | 'user.suspended' | 'user.unsuspended' | 'user.deleted'
  | 'application.created' | 'application.updated' | 'application.deleted' | 'application.secret_rotated'
  | 'auth.failed'

/** Something that can write structured log lines (pino, or a fastify logger). */
export interface AuditLogger {
  info: (object: Record<string, unknown>, message: string) => void
}

/**
 * Adds an audit event to `em`'s unit of work: it is written by the same flush, inside the
 * same transaction, as the change it describes — or not at all.
 */
export function recordAudit (em: EntityManager, actor: Actor, action: AuditAction, target: AuditTarget, details?: Record<string, unknown>): AuditEvent {
  return em.create(AuditEvent, {
    actorId: actor.id,
    actor: actor.label.slice(0, 100),
    action,
    targetType: target.type,
    targetId: target.id ?? null,
    target: target.label?.slice(0, 200) ?? null,
    ip: actor.ip ?? null,
    userAgent: actor.userAgent?.slice(0, 300) ?? null,
    details: details ?? null
  })
}

/** Logs committed audit events as structured lines (never with secrets: events hold none). */
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
