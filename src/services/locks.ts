import type { EntityManager } from '@mikro-orm/core'

/**
 * Every PostgreSQL advisory lock Tessera takes, in one place so no two share a number.
 * Transaction-scoped: held until the surrounding transaction ends, on whichever replica.
 */
const ADVISORY_LOCKS = {
  /** The first start's admin and token (services/bootstrap.ts). */
  bootstrap: 7_466_547,
  /** Changes to admin rights and suspension: the last active admin must remain (services/user-admin.ts). */
  adminChange: 7_466_548,
  /** One replica sweeps long-dead tokens at a time (services/token-sweeper.ts). */
  tokenSweep: 7_466_549,
  /** Creating and rotating signing keys (services/signing-keys.ts); it shared adminChange's number once. */
  signingKey: 7_466_550
} as const

export type AdvisoryLock = keyof typeof ADVISORY_LOCKS

/** Waits for `lock` inside `em`'s current transaction. */
export async function takeTransactionLock (em: EntityManager, lock: AdvisoryLock): Promise<void> {
  await em.getConnection().execute('select pg_advisory_xact_lock(?)', [ADVISORY_LOCKS[lock]], 'all', em.getTransactionContext())
}

/** Takes `lock` inside `em`'s current transaction if no one holds it; false when another does. */
export async function tryTransactionLock (em: EntityManager, lock: AdvisoryLock): Promise<boolean> {
  const [row] = await em.getConnection().execute<Array<{ locked: boolean }>>('select pg_try_advisory_xact_lock(?) as locked', [ADVISORY_LOCKS[lock]], 'all', em.getTransactionContext())
  return row?.locked === true
}
