import fp from 'fastify-plugin'
import { KEY_REFRESH_INTERVAL } from '../../src/services/signing-keys.js'

export interface KeysPluginOptions {
  /** Create the first key if needed and load the keys at start (false only while migrations are pending). */
  ensure: boolean
}

/**
 * Signing keys at start: the first start creates one (replicas agree under an advisory lock),
 * every start loads them. Reloaded periodically so a rotation by another replica or the CLI
 * reaches this one: it signs with the new key and publishes it.
 */
export default fp<KeysPluginOptions>(async function keys (fastify, options) {
  const store = fastify.services.keys
  if (options.ensure) {
    const active = await store.ensureSigningKey()
    fastify.log.debug({ kid: active.kid }, 'signing key loaded')
  }
  const timer = setInterval(() => {
    store.reload().catch((error: unknown) => { fastify.log.warn({ err: error }, 'could not reload the signing keys') })
  }, KEY_REFRESH_INTERVAL * 1000)
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}, { name: 'keys', dependencies: ['services', 'orm'] })
