import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { resolve } from 'node:path'
import { inspect } from 'node:util'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import app from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js'
import { serverOptions } from './options.js'
import { bootstrap, type BootstrapResult } from './services/bootstrap.js'

/** The first-start banner with the generated admin password and token: shown once, never in the log. */
function bootstrapBanner (result: BootstrapResult & { generatedPassword: string, token: string }, config: Config): string {
  return [
    '',
    `Tessera: first start — created the admin user "${result.username}".`,
    `  password:    ${result.generatedPassword}`,
    `  admin token: ${result.token}`,
    '  These are shown once. Store them now.',
    '',
    '  Next, ask Tessera about the token:',
    `    curl -s ${config.publicUrl}/oauth/token/info -H "Authorization: Bearer ${result.token}"`,
    '  and create a personal token with the password:',
    `    curl -s -u '${result.username}:${result.generatedPassword}' -H 'content-type: application/json' \\`,
    `      -d '{"name":"my-first-token","scopes":["read:tokens"]}' ${config.publicUrl}/api/v1/users/${result.username}/tokens`
  ].join('\n') + '\n\n'
}

/**
 * Hands the first-start credentials to the person starting the server, and to no log collector:
 * stdout is the JSON log stream, and a stderr that is not a terminal is usually collected too
 * (Docker, systemd). So they go to stderr only when it is a terminal; otherwise into a new file
 * only this user can read (mode 0600, created exclusively so that an existing file or a symlink
 * planted in a shared temporary directory is never written through), whose path — never its
 * content — is logged. The file lives in DATA_DIR on the embedded database (Tessera's own
 * directory), else in the system's temporary directory; its random suffix makes the name
 * unguessable there.
 */
async function showFirstStart (first: BootstrapResult, config: Config, log: FastifyBaseLogger): Promise<void> {
  const { username, generatedPassword, token } = first
  if (generatedPassword === null || token === null) {
    // Nothing secret to show: the password is the operator's own.
    log.info({ username }, `first start: created the admin user "${username}" with the password in BOOTSTRAP_ADMIN_PASSWORD; create tokens with \`tessera token generate\` or Basic auth`)
    return
  }
  const banner = bootstrapBanner({ username, generatedPassword, token }, config)
  if (process.stderr.isTTY) {
    process.stderr.write(banner)
    log.warn({ username }, `first start: created the admin user "${username}"; its password and a first admin token were shown once on the terminal`)
    return
  }
  const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, '')
  const file = resolve(config.embeddedDatabase ? config.DATA_DIR : tmpdir(), `tessera-first-start-${stamp}-${randomBytes(4).toString('hex')}.txt`)
  try {
    await writeFile(file, banner, { flag: 'wx', mode: 0o600 })
  } catch (error) {
    log.error({ err: error, file }, `first start: created the admin user "${username}", but could not write its credentials to ${file}; get an admin token with \`tessera token generate --username ${username} --name recovery --scopes admin\` and set a password through the admin API`)
    return
  }
  log.warn({ username, file }, `first start: created the admin user "${username}"; its password and a first admin token are in ${file} (readable by this user only): store them, then delete the file`)
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
  await fastify.register(app, { config, databaseUrl: embedded?.url ?? config.DATABASE_URL, migrate: config.MIGRATE_ON_START ? true : 'require' })
  await fastify.ready()
  if (embedded !== undefined) fastify.log.info({ dataDir: config.DATA_DIR }, 'using the embedded PostgreSQL (DATABASE_URL is unset)')

  const first = await bootstrap(fastify.services)
  if (first !== null) await showFirstStart(first, config, fastify.log)

  let closing = false
  const close = (signal: string): void => {
    if (closing) return
    closing = true
    fastify.log.info({ signal, timeout: config.SHUTDOWN_TIMEOUT }, 'shutting down: draining requests')
    // The whole shutdown — requests in flight, the last_used flush, the listener and the pools —
    // within SHUTDOWN_TIMEOUT, also when the database stopped answering: an orchestrator waits for
    // the exit, and a process that never exits holds its rollout.
    setTimeout(() => {
      fastify.log.warn({ timeout: config.SHUTDOWN_TIMEOUT }, 'shutdown took longer than SHUTDOWN_TIMEOUT: exiting with requests or the last_used flush unfinished (last_used is accurate to a minute; nothing else is held in memory)')
      process.exit(0)
    }, config.SHUTDOWN_TIMEOUT * 1000).unref()
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
