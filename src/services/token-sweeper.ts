import type { EntityManager } from '@mikro-orm/core'

export interface SweepOptions {
  /** Seconds a token stays after it expired or was revoked, before it is deleted. */
  retentionSeconds: number
  batchSize?: number
}

/** Arbitrary constant: only one replica sweeps at a time. */
const SWEEP_LOCK = 7_466_549

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
      const connection = tx.getConnection()
      const context = tx.getTransactionContext()
      const [lock] = await connection.execute<Array<{ locked: boolean }>>('select pg_try_advisory_xact_lock(?) as locked', [SWEEP_LOCK], 'all', context)
      if (lock?.locked !== true) return null
      const result = await connection.execute<{ affectedRows: number }>(
        `delete from access_tokens where id in (
           select id from access_tokens
            where (expires_at is not null and expires_at < ?::timestamptz) or (revoked_at is not null and revoked_at < ?::timestamptz)
            limit ? for update skip locked)`,
        [cutoff, cutoff, batchSize],
        'run',
        context
      )
      return result.affectedRows
    })
    if (deleted === null) return total === 0 ? null : total
    total += deleted
    if (deleted < batchSize) return total
  }
}
