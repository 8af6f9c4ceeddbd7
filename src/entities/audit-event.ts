import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'

/**
 * Append-only record of a state change or a failed authentication. No foreign keys: an
 * event outlives the user, token or application it names.
 */
export const AuditEventSchema = defineEntity({
  name: 'AuditEvent',
  extends: BaseEntity,
  tableName: 'audit_events',
  properties: {
    // Listed newest first and filtered by date: indexed, unlike the base's.
    createdAt: p.datetime().onCreate(() => new Date()).index(),
    actorId: p.uuid().nullable().index(),
    actor: p.string().length(100),
    action: p.string().length(50).index(),
    targetType: p.string().length(30).nullable(),
    targetId: p.string().length(64).nullable().index(),
    target: p.string().length(200).nullable(),
    ip: p.string().length(45).nullable(),
    userAgent: p.string().length(300).nullable(),
    details: p.json<Record<string, unknown>>().nullable()
  }
})

export class AuditEvent extends AuditEventSchema.class {}

AuditEventSchema.setClass(AuditEvent)
