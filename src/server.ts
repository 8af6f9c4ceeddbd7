import { inspect } from 'node:util'
import Fastify from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import app from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js'
import { serverOptions } from './options.js'
import { bootstrap, type BootstrapResult } from './services/bootstrap.js'

/** The start-up banner for a first start: shown once, on the console, never in the log. */
function bootstrapBanner (result: BootstrapResult, config: Config): string {
  const lines = ['', `Tessera: first start — created the admin user "${result.username}".`]
  if (result.generatedPassword !== null && result.token !== null) {
    lines.push(
      `  password:    ${result.generatedPassword}`,
      `  admin token: ${result.token}`,
      '  These are shown once. Store them now.',
      '',
      '  Next, ask Tessera about the token:',
      `    curl -s ${config.publicUrl}/oauth/token/info -H "Authorization: Bearer ${result.token}"`,
      '  and create a personal token with the password:',
      `    curl -s -u '${result.username}:${result.generatedPassword}' -H 'content-type: application/json' \\`,
      `      -d '{"name":"my-first-token","scopes":["read:tokens"]}' ${config.publicUrl}/api/v1/users/${result.username}/tokens`
    )
  } else {
    lines.push('  Its password is the one in BOOTSTRAP_ADMIN_PASSWORD; create tokens with `tessera token generate` or Basic auth.')
  }
  return lines.join('\n') + '\n\n'
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, { dotenv: true })
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tessera: ${error.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw error
  }

  let embedded: EmbeddedPostgres | undefined
  if (config.embeddedDatabase) embedded = await startEmbeddedPostgres(config.DATA_DIR)

  const fastify = Fastify(serverOptions(config)).withTypeProvider<TypeBoxTypeProvider>()
  fastify.addHook('onClose', async () => { await embedded?.close() })
  await fastify.register(app, { config, databaseUrl: embedded?.url ?? config.DATABASE_URL })
  await fastify.ready()
  if (embedded !== undefined) fastify.log.info({ dataDir: config.DATA_DIR }, 'using the embedded PostgreSQL (DATABASE_URL is unset)')

  const first = await bootstrap(fastify.services)
  if (first !== null) process.stdout.write(bootstrapBanner(first, config))

  let closing = false
  const close = (signal: string): void => {
    if (closing) return
    closing = true
    fastify.log.info({ signal }, 'shutting down: draining requests')
    fastify.close().then(() => process.exit(0), (error: unknown) => {
      fastify.log.error({ err: error }, 'error during shutdown')
      process.exit(1)
    })
  }
  process.once('SIGINT', close)
  process.once('SIGTERM', close)

  await fastify.listen({ host: config.HOST, port: config.PORT })
}

main().catch((error: unknown) => {
  process.stderr.write(`tessera: failed to start: ${error instanceof Error ? error.message : inspect(error)}\n`)
  process.exit(1)
})
