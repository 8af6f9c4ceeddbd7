import type { EventArgs, EventSubscriber, TransactionEventArgs } from '@mikro-orm/core'
import { AuditEvent } from '../entities/audit-event.js'
import { logAudit, type AuditLogger } from './audit.js'

/**
 * Logs audit events as structured lines once they are committed: an event is inserted by
 * the same flush as its change, and only reaches the log when that transaction commits.
 */
export class AuditLogSubscriber implements EventSubscriber<AuditEvent> {
  readonly #pending = new WeakMap<object, AuditEvent[]>()
  readonly #logger: AuditLogger

  constructor (logger: AuditLogger) {
    this.#logger = logger
  }

  getSubscribedEntities () {
    return [AuditEvent]
  }

  afterCreate (args: EventArgs<AuditEvent>): void {
    const transaction = args.em.getTransactionContext() as object | undefined
    if (transaction === undefined) {
      logAudit(this.#logger, [args.entity])
      return
    }
    const list = this.#pending.get(transaction)
    if (list === undefined) this.#pending.set(transaction, [args.entity])
    else list.push(args.entity)
  }

  afterTransactionCommit (args: TransactionEventArgs): void {
    if (args.transaction === undefined) return
    const list = this.#pending.get(args.transaction)
    if (list !== undefined) {
      this.#pending.delete(args.transaction)
      logAudit(this.#logger, list)
    }
  }

  afterTransactionRollback (args: TransactionEventArgs): void {
    if (args.transaction !== undefined) this.#pending.delete(args.transaction)
  }
}
