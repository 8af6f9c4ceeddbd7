import type { EntityManager } from '@mikro-orm/core'
import { tryTransactionLock } from './locks.js'

export interface SweepOptions {
  /** Seconds a token stays after it expired or was revoked, before it is deleted. */
  retentionSeconds: number
  batchSize?: number
}

/**
 * Deletes tokens dead (expired or revoked) for longer than the retention, in small batches:
 * each batch is its own short statement that skips rows locked by others, so the table is
 * never locked and live traffic is not blocked. Returns the number of tokens deleted, or
 * null when another replica holds the sweep.
 */
export async function sweepDeadTokens (em: EntityManager, options: SweepOptions): Promise<number | null> {
  const batchSize = options.batchSize ?? 1000
  const cutoff = new Date(Date.now() - options.retentionSeconds * 1000).toISOString()
  let total = 0
  for (;;) {
    // One short transaction per batch; the transaction-scoped advisory lock keeps replicas apart.
    const deleted = await em.fork().transactional(async (tx) => {
      if (!await tryTransactionLock(tx, 'tokenSweep')) return null
      const result = await tx.getConnection().execute<{ affectedRows: number }>(
        `delete from access_tokens where id in (
           select id from access_tokens
            where (expires_at is not null and expires_at < ?::timestamptz) or (revoked_at is not null and revoked_at < ?::timestamptz)
            limit ? for update skip locked)`,
        [cutoff, cutoff, batchSize],
        'run',
        tx.getTransactionContext()
      )
      return result.affectedRows
    })
    if (deleted === null) return total === 0 ? null : total
    total += deleted
    if (deleted < batchSize) return total
  }
}
