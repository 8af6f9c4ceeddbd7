import fp from 'fastify-plugin'
import type { Config } from '../../src/config.js'
import { AuditLogSubscriber } from '../../src/services/audit-subscriber.js'
import { createServices, type Services } from '../../src/services/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    services: Services
  }
}

/** Wires the domain services once and exposes them as `fastify.services`. */
export default fp<{ config: Config }>(async function services (fastify, options) {
  fastify.decorate('config', options.config)
  const services = createServices(options.config, fastify.orm, fastify.log)
  fastify.decorate('services', services)
  // How long a verification takes, before the first unknown username or client_id must wait as long.
  await services.hasher.calibrate()
  fastify.orm.em.getEventManager().registerSubscriber(new AuditLogSubscriber(fastify.log))
  const { listener, sharedCounters, budgets, fleet, webhooks, expiryNotices } = services
  if (sharedCounters !== null) {
    // Resolves once connected, or after the first failed attempt: the limits count locally meanwhile.
    await sharedCounters.start()
    budgets?.start()
    fleet?.start()
    fastify.addHook('onClose', async () => {
      await fleet?.stop()
      await budgets?.stop()
      await sharedCounters.stop()
    })
  }
  // Every replica delivers; SKIP LOCKED keeps them off each other's deliveries.
  fastify.addHook('onReady', async () => {
    webhooks.start()
    expiryNotices.start()
  })
  fastify.addHook('onClose', async () => {
    await expiryNotices.stop()
    await webhooks.stop()
    services.mailer?.close()
  })
  if (listener !== null) {
    // Resolves once listening, or after the first failed attempt (it keeps retrying on its own).
    await listener.start()
    fastify.addHook('onClose', async () => { await listener.stop() })
  }
}, { name: 'services', dependencies: ['orm'] })
