import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from './config.js'
import orm from '../plugins/external/orm.js'
import formbody from '../plugins/external/formbody.js'
import rateLimit from '../plugins/external/rate-limit.js'
import swagger from '../plugins/external/swagger.js'
import services from '../plugins/app/services.js'
import keys from '../plugins/app/keys.js'
import errorHandler from '../plugins/app/error-handler.js'
import authentication from '../plugins/app/authentication.js'
import bearer from '../plugins/app/bearer.js'
import webSessions from '../plugins/app/session.js'
import authorization from '../plugins/app/authorization.js'
import links from '../plugins/app/links.js'
import usage from '../plugins/app/usage.js'
import requestId from '../plugins/app/request-id.js'
import metrics from '../plugins/app/metrics.js'
import health from './routes/health/index.js'
import oauth from './routes/oauth/index.js'
import gatewayVerify from './routes/gateway/verify.js'
import userTokens from './routes/users/tokens.js'
import admin from './routes/admin/index.js'
import tokenReview from './routes/tokens/index.js'
import session from './routes/session/index.js'
import sessionTokens from './routes/session/tokens.js'
import webPage from './routes/web/index.js'
import githubSecretScanning from './routes/secret-scanning/github.js'
import { VERSION } from './version.js'

export interface AppOptions {
  config: Config
  /** The PostgreSQL URL to use: DATABASE_URL, or the embedded server's. */
  databaseUrl: string
  /** Apply pending migrations at start (default true); `'require'`: apply none, refuse to start while any is pending. */
  migrate?: boolean | 'require'
}

/**
 * The whole application as one plugin; only server.ts listens. Three ordered passes, listed
 * explicitly rather than discovered from the file system, so the TypeScript compiler checks the
 * whole graph and the same code runs under tsx, node-tap and from dist/:
 * third-party plugins → our cross-cutting plugins → routes. Wrapped in fastify-plugin so the
 * server and the tests see `fastify.services` and `fastify.orm`; each route plugin stays encapsulated.
 */
async function app (fastify: FastifyInstance, options: AppOptions): Promise<void> {
  const { config } = options

  // 1. plugins/external
  await fastify.register(orm, { clientUrl: options.databaseUrl, poolMax: config.embeddedDatabase ? 1 : config.DATABASE_POOL_MAX, timeout: config.DATABASE_TIMEOUT_MS, embedded: config.embeddedDatabase, migrate: options.migrate ?? true })
  await fastify.register(formbody)
  await fastify.register(swagger, { publicUrl: config.publicUrl, version: VERSION })

  // 2. plugins/app
  await fastify.register(services, { config })
  // Counts in Redis when REDIS_URL is set: it takes the services' shared counters.
  await fastify.register(rateLimit, { sharedCounters: fastify.services.sharedCounters })
  await fastify.register(keys, { ensure: (options.migrate ?? true) !== false })
  await fastify.register(requestId)
  await fastify.register(errorHandler)
  await fastify.register(metrics)
  await fastify.register(usage)
  await fastify.register(authentication)
  await fastify.register(bearer)
  await fastify.register(webSessions)
  await fastify.register(authorization)
  await fastify.register(links)

  // 3. routes
  await fastify.register(health)
  await fastify.register(oauth)
  await fastify.register(gatewayVerify)
  await fastify.register(userTokens)
  await fastify.register(tokenReview)
  await fastify.register(admin)
  await fastify.register(session)
  await fastify.register(sessionTokens)
  await fastify.register(webPage)
  await fastify.register(githubSecretScanning)
}

export default fp(app, { name: 'tessera' })
