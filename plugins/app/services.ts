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
  fastify.decorate('services', createServices(options.config, fastify.orm))
  fastify.orm.em.getEventManager().registerSubscriber(new AuditLogSubscriber(fastify.log))
}, { name: 'services', dependencies: ['orm'] })
