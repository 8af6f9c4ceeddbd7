import fp from 'fastify-plugin'
import { sweepDeadTokens } from '../../src/services/token-sweeper.js'
import { UsageRecorder } from '../../src/services/usage-recorder.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Buffered `last_used` notes, written once per LAST_USED_FLUSH_INTERVAL and on close. */
    usage: UsageRecorder
  }
}

/**
 * Token bookkeeping that must never cost a write per request: the `last_used` buffer, and the
 * optional sweeper that deletes tokens dead for longer than TOKEN_RETENTION.
 */
export default fp(async function usage (fastify) {
  const { config } = fastify
  const recorder = new UsageRecorder(fastify.orm.em, {
    intervalSeconds: config.LAST_USED_FLUSH_INTERVAL,
    onError: (error) => { fastify.log.warn({ err: error }, 'could not write last_used; will retry') }
  })
  fastify.decorate('usage', recorder)

  let sweeper: NodeJS.Timeout | undefined
  if (config.TOKEN_RETENTION > 0) {
    sweeper = setInterval(() => {
      sweepDeadTokens(fastify.orm.em, { retentionSeconds: config.TOKEN_RETENTION }).then((deleted) => {
        if (deleted !== null && deleted > 0) fastify.log.info({ deleted }, 'swept long-dead tokens')
      }, (error: unknown) => { fastify.log.warn({ err: error }, 'token sweep failed') })
    }, config.TOKEN_SWEEP_INTERVAL * 1000)
    sweeper.unref()
  }

  // Runs before the ORM closes (close hooks run in reverse order of registration).
  fastify.addHook('onClose', async () => {
    if (sweeper !== undefined) clearInterval(sweeper)
    await recorder.close().catch((error: unknown) => { fastify.log.error({ err: error }, 'could not flush last_used on close') })
  })
}, { name: 'usage', dependencies: ['orm', 'services'] })
