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
  /** Apply pending migrations before serving (the default; the CLI `migrate` does the same). */
  migrate?: boolean
}

/**
 * MikroORM on PostgreSQL (a server, or the embedded PGlite). Routes fork the entity manager
 * explicitly when they load entities; the introspection hot path uses the connection directly
 * and never pays for a unit of work.
 */
export default fp<OrmPluginOptions>(async function orm (fastify, options) {
  const orm = await MikroORM.init(createOrmConfig({ clientUrl: options.clientUrl, poolMax: options.poolMax, timeout: options.timeout, statementDeadlines: true, embedded: options.embedded }))
  fastify.addHook('onClose', async () => { await orm.close() })
  if (options.migrate ?? true) {
    const applied = await orm.migrator.up()
    if (applied.length > 0) fastify.log.info({ migrations: applied.map((m) => m.name) }, 'applied database migrations')
  }
  fastify.decorate('orm', orm)
}, { name: 'orm' })
