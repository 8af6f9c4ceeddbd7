import fp from 'fastify-plugin'
import { MikroORM } from '@mikro-orm/postgresql'
import { createOrmConfig } from '../../mikro-orm.config.js'

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM
  }
}

export interface OrmPluginOptions {
  clientUrl: string
  poolMax: number
  /** DATABASE_TIMEOUT_MS: the longest wait for a connection and for each statement. */
  timeout: number
  /** The embedded PGlite (DATABASE_URL unset). */
  embedded: boolean
  /**
   * `true` (the default): apply pending migrations before serving, as the CLI `migrate` does.
   * `'require'` (MIGRATE_ON_START=false): apply none, and refuse to start while any is pending.
   * `false`: neither (tests of the pending state).
   */
  migrate?: boolean | 'require'
}

/**
 * MikroORM on PostgreSQL (a server, or the embedded PGlite). Routes fork the entity manager
 * explicitly when they load entities; the introspection hot path uses the connection directly
 * and never pays for a unit of work.
 */
export default fp<OrmPluginOptions>(async function orm (fastify, options) {
  const orm = await MikroORM.init(createOrmConfig({ clientUrl: options.clientUrl, poolMax: options.poolMax, timeout: options.timeout, statementDeadlines: true, embedded: options.embedded }))
  const migrate = options.migrate ?? true
  try {
    if (migrate === true) {
      const applied = await orm.migrator.up()
      if (applied.length > 0) fastify.log.info({ migrations: applied.map((m) => m.name) }, 'applied database migrations')
    } else if (migrate === 'require') {
      const pending = await orm.migrator.getPending()
      if (pending.length > 0) {
        throw new Error(`${pending.length} database migration(s) pending (${pending.map((m) => m.name).join(', ')}) and MIGRATE_ON_START=false: apply them with \`tessera migrate\` (the migration Job) first`)
      }
    }
  } catch (error) {
    // A start that fails here never gets to the close hook: the connections are closed now.
    await orm.close().catch(() => {})
    throw error
  }
  fastify.addHook('onClose', async () => { await orm.close() })
  fastify.decorate('orm', orm)
}, { name: 'orm' })
