import { defineConfig, PostgreSqlDriver, type Options } from '@mikro-orm/postgresql'
import { Migrator } from '@mikro-orm/migrations'
import { entities } from './src/entities/index.js'
import { migrationsList } from './src/migrations/index.js'

export interface OrmSettings {
  clientUrl: string
  poolMax: number
  /** Milliseconds a query may take before it is cancelled (keeps a dead database from hanging requests). */
  statementTimeout?: number
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
    driverOptions: {
      connectionTimeoutMillis: 5000,
      ...(settings.statementTimeout !== undefined ? { statement_timeout: settings.statementTimeout } : {})
    },
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
