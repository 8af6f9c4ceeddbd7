import type { FastifyPluginAsync } from 'fastify'
import applications from './applications.js'
import audit from './audit.js'
import tokens from './tokens.js'
import users from './users.js'
import webhooks from './webhooks.js'

/**
 * Administration and provisioning, /api/v1/admin/*: every route needs a bearer token with the
 * `admin` scope held by an active administrator — one hook for the folder.
 */
const admin: FastifyPluginAsync = async function (fastify) {
  fastify.addHook('onRequest', fastify.requireAdmin)
  await fastify.register(users)
  await fastify.register(tokens)
  await fastify.register(applications)
  await fastify.register(audit)
  await fastify.register(webhooks)
}

export default admin
