import pg from 'pg'

/**
 * Idle time before TCP keepalive starts probing a database connection. The OS default is two
 * hours, all the while a connection to a vanished host looks alive; probing after ten seconds also
 * keeps NAT and firewall entries from expiring under an idle pool.
 */
export const KEEPALIVE_DELAY_MS = 10_000

/** The longest a transaction may sit idle between two statements, at the least (see serverTimeouts). */
const MIN_IDLE_IN_TRANSACTION_MS = 5000

/** The limits PostgreSQL enforces itself on each of Tessera's sessions, for DATABASE_TIMEOUT_MS `timeout`. */
export interface ServerTimeouts {
  statement_timeout: number
  idle_in_transaction_session_timeout: number
}

/**
 * - `statement_timeout` falls a tenth before the client's own deadline: on a database that is slow
 *   but reachable the server cancels the statement and says so (57014), and the connection stays
 *   in the pool; the client's deadline is left for a database that does not answer at all. Either
 *   way the server stops working on a statement nobody waits for any more.
 * - `idle_in_transaction_session_timeout` ends a transaction whose client stopped sending — a
 *   client cut off by a partition, whose connection the server still believes open. Without it
 *   the transaction keeps its row locks until the server's TCP keepalive notices (two hours by
 *   default) and every write to those rows fails meanwhile. Twice the statement deadline, and at
 *   least five seconds, because some transactions pause between statements for work of their own
 *   (an argon2 hash of a new password or client secret) that must never be mistaken for a
 *   vanished client.
 */
export function serverTimeouts (timeout: number): ServerTimeouts {
  return {
    statement_timeout: Math.floor(timeout * 0.9),
    idle_in_transaction_session_timeout: Math.max(2 * timeout, MIN_IDLE_IN_TRANSACTION_MS)
  }
}

export interface DeadlineSettings {
  /** DATABASE_TIMEOUT_MS. */
  timeout: number
  /** Bound each statement by `timeout` (the server); without, only connecting is bounded (the CLI). */
  statements: boolean
  /**
   * Have the server enforce serverTimeouts too. Not on the embedded PGlite: it ignores these
   * startup parameters, cannot cancel a running statement (no timer fires inside its WebAssembly
   * backend), and a session it ends on idle_in_transaction_session_timeout wedges the one session
   * it has, and with it the process.
   */
  serverSide: boolean
}

/**
 * Options for every connection of MikroORM's pool: MikroORM hands `driverOptions` to pg's Pool,
 * which hands them to each client it creates.
 */
export function poolClientOptions (settings: DeadlineSettings): pg.PoolConfig {
  return {
    connectionTimeoutMillis: settings.timeout,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    ...(settings.statements
      ? { Client: DeadlineClient, query_timeout: settings.timeout, ...(settings.serverSide ? serverTimeouts(settings.timeout) : {}) }
      : {})
  }
}

/** What pg rejects a statement with once its `query_timeout` has passed. */
const MISSED_DEADLINE = 'Query read timeout'

type Release = (error?: Error | boolean) => void

/**
 * A pooled `pg` client that is discarded, and gives its pool slot back, once a statement missed
 * its deadline or the connection ended. Two gaps it closes:
 *
 * - pg rejects a statement past its `query_timeout` but keeps the connection, the unanswered
 *   statement still in front of whatever is sent next, and pg-pool takes such a client back like
 *   any other when its holder releases it without an error — which Kysely, MikroORM's executor,
 *   always does. After a partition the pool would hand out connections that answer nothing. So a
 *   client that missed a deadline destroys its socket at once (not a polite close: a partitioned
 *   peer never answers one); the statements behind it fail and the pool drops it.
 * - Kysely never releases a transaction's connection when BEGIN or ROLLBACK fails, and both fail
 *   once the connection is gone: the slot would stay checked out for good, and the pool of
 *   DATABASE_POOL_MAX shrink by one with every write caught in an outage. So a client whose
 *   connection ends while checked out releases itself; its holder's own release later does nothing.
 */
export class DeadlineClient extends pg.Client {
  #release: Release | null = null

  constructor (config?: string | pg.ClientConfig) {
    super(config)
    this.on('end', () => { this.release(new Error('the database connection ended while in use')) })
  }

  /** pg-pool sets a fresh `release` each time it hands the client out. */
  set release (release: Release) {
    this.#release = release
  }

  /** Releases the checkout once; later calls do nothing (pg-pool's own would throw). */
  get release (): Release {
    return (error) => {
      const release = this.#release
      this.#release = null
      release?.(error)
    }
  }

  // Every form of query() (a dozen overloads in pg's types) passes through unchanged.
  override query (...args: unknown[]): any {
    const callback = args.at(-1)
    if (typeof callback === 'function') {
      args[args.length - 1] = (error: unknown, result: unknown) => {
        this.#settled(error)
        callback(error, result)
      }
      return Reflect.apply(super.query, this, args)
    }
    const result: unknown = Reflect.apply(super.query, this, args)
    // A side branch: the caller still gets the rejection from `result` itself.
    if (result instanceof Promise) result.catch((error: unknown) => { this.#settled(error) })
    return result
  }

  #settled (error: unknown): void {
    if (error instanceof Error && error.message === MISSED_DEADLINE) this.connection.stream.destroy()
  }
}
