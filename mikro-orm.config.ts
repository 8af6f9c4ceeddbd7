import { defineConfig, PostgreSqlDriver, type Options } from '@mikro-orm/postgresql'
import { Migrator } from '@mikro-orm/migrations'
import { poolClientOptions } from './src/db/deadlines.js'
import { entities } from './src/entities/index.js'
import { migrationsList } from './src/migrations/index.js'

export interface OrmSettings {
  clientUrl: string
  poolMax: number
  /**
   * DATABASE_TIMEOUT_MS: how long to wait for a connection (a free one from the pool, or a new
   * one) and, with `statementDeadlines`, for each statement, so a dead or partitioned database
   * fails requests quickly instead of holding them and the pool's connections.
   */
  timeout: number
  /**
   * Bound every statement (the server). The CLI does not: `tessera migrate` may run a statement
   * longer than a request's (an index on a large table); it still connects within `timeout`.
   */
  statementDeadlines: boolean
  /** The embedded PGlite, which enforces no server-side timeout (see DeadlineSettings.serverSide). */
  embedded: boolean
}

/**
 * The one MikroORM configuration, for the server, the CLI and the tests. Migrations are listed
 * explicitly (src/migrations/index.ts) so the same code runs from TypeScript and from dist/.
 */
export function createOrmConfig (settings: OrmSettings): Options {
  return defineConfig({
    driver: PostgreSqlDriver,
    clientUrl: settings.clientUrl,
    entities,
    extensions: [Migrator],
    // Entities are only used through forked entity managers; the global one stays clean.
    allowGlobalContext: false,
    pool: { min: 0, max: settings.poolMax, idleTimeoutMillis: 30000 },
    // Connect timeout, keepalive, and (statementDeadlines) each statement's deadline, client- and server-side.
    driverOptions: poolClientOptions({ timeout: settings.timeout, statements: settings.statementDeadlines, serverSide: !settings.embedded }),
    migrations: {
      migrationsList,
      tableName: 'tessera_migrations',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
      path: 'src/migrations',
      emit: 'ts'
    },
    debug: false
  })
}
