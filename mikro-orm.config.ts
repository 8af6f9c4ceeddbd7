import { defineConfig, PostgreSqlDriver, type Options } from '@mikro-orm/postgresql'
import { Migrator } from '@mikro-orm/migrations'
import { entities } from './src/entities/index.js'
import { migrationsList } from './src/migrations/index.js'

export interface OrmSettings {
  clientUrl: string
  poolMax: number
  /**
   * Milliseconds to wait for a connection (a free one from the pool, or a new one) before failing,
   * so a dead database fails requests quickly instead of queueing them (default 5000).
   */
  connectTimeout?: number
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
      connectionTimeoutMillis: settings.connectTimeout ?? 5000,
      // Notice a peer that vanished without closing the connection (a partition, a killed host).
      keepAlive: true
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
