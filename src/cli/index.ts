#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { MikroORM } from '@mikro-orm/postgresql'
import pino from 'pino'
import { createOrmConfig } from '../../mikro-orm.config.js'
import { ConfigError, loadConfig, type Config } from '../config.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../db/embedded.js'
import { DataDirInUseError } from '../db/lock.js'
import { REDACTED_PATHS } from '../options.js'
import { createApplication, ensureInternalApplication } from '../services/applications.js'
import { AuditLogSubscriber } from '../services/audit-subscriber.js'
import type { Actor } from '../services/audit.js'
import { createServices, type Services } from '../services/index.js'
import { KEY_REFRESH_INTERVAL } from '../services/signing-keys.js'
import { issuePersonalToken } from '../services/tokens.js'
import { updateUser } from '../services/user-admin.js'
import { createUser, findUserOrFail } from '../services/users.js'

const USAGE = `Usage: tessera <command> [options]

Commands:
  migrate                              apply pending database migrations
  migration:create                     write a new migration from the entity definitions (development)
  ensure-internal-app                  create the built-in first-party application if it is missing
  user create --username NAME [--email E] [--admin] [--password-stdin]
                                       create a user; without --password-stdin the user has no
                                       password (a bot account that only uses tokens)
  user suspend --username NAME         suspend a user: all their tokens stop working at once
  user unsuspend --username NAME       lift a suspension
  user promote --username NAME         make a user an administrator
  user demote --username NAME          take administrator rights away (never from the last
                                       active administrator)
  token generate --username NAME --name TOKEN_NAME --scopes "a b" [--expires-in SECONDS] [--raw]
                                       create a personal access token; --raw prints only the token
  application create --name NAME --scopes "a b" [--public] [--redirect-uri URI ...]
                     [--introspection-audience AUD ...] [--introspection-scope SCOPE ...]
                                       create an OAuth application; prints client_id and the
                                       client secret (shown once)
  key rotate                           create a new signing key for JWTs; the previous one stays
                                       published until every token it signed has expired

Configuration comes from the environment and an optional .env, as for the server.
Exit codes: 0 success, 1 failure, 2 usage error, 78 configuration error.`

class UsageError extends Error {}

const CLI_ACTOR: Actor = { id: null, label: 'cli' }

interface Runtime {
  config: Config
  orm: MikroORM
  services: Services
  close: () => Promise<void>
}

async function open (config: Config, migrate: boolean): Promise<Runtime> {
  let embedded: EmbeddedPostgres | undefined
  if (config.embeddedDatabase) embedded = await startEmbeddedPostgres(config.DATA_DIR)
  // Connects within DATABASE_TIMEOUT_MS, with keepalive, but no statement deadline: `migrate` may run long statements.
  const orm = await MikroORM.init(createOrmConfig({ clientUrl: embedded?.url ?? config.DATABASE_URL, poolMax: 1, timeout: config.DATABASE_TIMEOUT_MS, statementDeadlines: false, embedded: config.embeddedDatabase }))
  const logger = pino({ level: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, redact: REDACTED_PATHS }, pino.destination(2))
  orm.em.getEventManager().registerSubscriber(new AuditLogSubscriber(logger))
  if (migrate) await orm.migrator.up()
  return {
    config,
    orm,
    services: createServices(config, orm),
    async close () {
      await orm.close()
      await embedded?.close()
    }
  }
}

function list (value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).filter(Boolean)
}

function required (value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required`)
  return value
}

async function readStdinLine (): Promise<string> {
  if (process.stdin.isTTY === true) process.stderr.write('Password: ')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? ''
}

type Out = (line: string) => void

async function run (argv: string[], out: Out): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      username: { type: 'string' },
      email: { type: 'string' },
      admin: { type: 'boolean', default: false },
      'password-stdin': { type: 'boolean', default: false },
      name: { type: 'string' },
      scopes: { type: 'string' },
      'expires-in': { type: 'string' },
      raw: { type: 'boolean', default: false },
      public: { type: 'boolean', default: false },
      'redirect-uri': { type: 'string', multiple: true },
      'introspection-audience': { type: 'string', multiple: true },
      'introspection-scope': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  const command = positionals.join(' ')
  if (values.help || command === '' || command === 'help') {
    out(USAGE)
    return
  }
  const known = ['migrate', 'migration:create', 'ensure-internal-app', 'user create', 'user suspend', 'user unsuspend', 'user promote', 'user demote', 'token generate', 'application create', 'key rotate']
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}"`)

  const config = loadConfig(process.env, { dotenv: true })
  const password = command === 'user create' && values['password-stdin'] ? await readStdinLine() : null
  // migration:create too: it diffs the entities against the database, which must hold every earlier migration.
  const runtime = await open(config, true)
  try {
    const em = runtime.orm.em.fork()
    switch (command) {
      case 'migrate': {
        out('migrations are up to date')
        break
      }
      case 'migration:create': {
        const result = await runtime.orm.migrator.create('src/migrations')
        out(result.fileName === '' ? 'no changes: the schema matches the entities' : `wrote src/migrations/${result.fileName}; add it to src/migrations/index.ts`)
        break
      }
      case 'ensure-internal-app': {
        const created = await ensureInternalApplication(em)
        out(created ? 'created the internal application' : 'the internal application already exists')
        break
      }
      case 'user create': {
        const user = await em.transactional(async (tx) => await createUser(tx, runtime.services.hasher, {
          username: required(values.username, 'username'),
          email: values.email ?? null,
          password,
          admin: values.admin
        }, CLI_ACTOR))
        out(`created user ${user.username} (id ${user.id})${user.admin ? ', an administrator' : ''}${password === null ? ', without a password' : ''}`)
        break
      }
      case 'user suspend':
      case 'user unsuspend':
      case 'user promote':
      case 'user demote': {
        const patch = { 'user suspend': { suspended: true }, 'user unsuspend': { suspended: false }, 'user promote': { admin: true }, 'user demote': { admin: false } }[command]
        const username = required(values.username, 'username')
        // The API's domain function, so the API's rules hold here too: the last active
        // administrator can be neither suspended nor demoted.
        const user = await em.transactional(async (tx) => {
          const found = await findUserOrFail(tx, username)
          await updateUser(tx, runtime.services.hasher, found, patch, CLI_ACTOR)
          return found
        })
        // Running servers drop what they cached about this user's tokens (LISTEN/NOTIFY).
        await runtime.services.invalidation.user(user.id)
        out(`${command.slice('user '.length).replace(/e?$/, 'ed')} ${user.username}`)
        break
      }
      case 'token generate': {
        const username = required(values.username, 'username')
        const expiresIn = values['expires-in']
        if (expiresIn !== undefined && !/^[1-9][0-9]*$/.test(expiresIn)) throw new UsageError('--expires-in must be a whole number of seconds')
        const issued = await em.transactional(async (tx) => {
          const owner = await findUserOrFail(tx, username)
          return await issuePersonalToken(tx, runtime.services.issuer, {
            ownerId: owner.id,
            input: {
              name: required(values.name, 'name'),
              scopes: list(required(values.scopes, 'scopes')),
              ...(expiresIn !== undefined ? { expires_in: Number(expiresIn) } : {})
            },
            actor: CLI_ACTOR
          })
        })
        if (values.raw) out(issued.plaintext)
        else {
          out(`created token "${issued.token.name}" (id ${issued.token.id}) for ${username}`)
          out(`scopes: ${issued.token.scopes.join(' ')}; expires: ${issued.token.expiresAt?.toISOString() ?? 'never'}`)
          out(`token (shown once): ${issued.plaintext}`)
        }
        break
      }
      case 'key rotate': {
        const { active, retired } = await runtime.services.keys.rotateSigningKey()
        out(`new signing key ${active.kid} (ES256) signs from now on`)
        for (const key of retired) out(`retired ${key.kid}: still published until the tokens it signed have expired`)
        out(`running servers pick it up within ${KEY_REFRESH_INTERVAL} seconds`)
        break
      }
      case 'application create': {
        const created = await em.transactional(async (tx) => await createApplication(tx, {
          hasher: runtime.services.hasher,
          scopes: runtime.config.scopes,
          tokenPrefix: runtime.config.TOKEN_PREFIX
        }, {
          name: required(values.name, 'name'),
          scopes: list(values.scopes),
          confidential: !values.public,
          redirectUris: values['redirect-uri'] ?? [],
          introspectionAudiences: values['introspection-audience'] ?? null,
          introspectionScopes: values['introspection-scope'] ?? null
        }, CLI_ACTOR))
        out(`created application "${created.application.name}" (id ${created.application.id})`)
        out(`client_id:     ${created.application.clientId}`)
        if (created.clientSecret !== null) out(`client_secret: ${created.clientSecret}  (shown once)`)
        break
      }
    }
  } finally {
    await runtime.close()
  }
}

async function main (argv: string[]): Promise<number> {
  try {
    await run(argv, (line) => process.stdout.write(line + '\n'))
    return 0
  } catch (error) {
    const err = error as Error & { code?: string, statusCode?: number }
    if (error instanceof UsageError || err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`tessera: ${err.message}\nRun "tessera --help" for usage.\n`)
      return 2
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`tessera: ${err.message}\n`)
      return 78
    }
    if (error instanceof DataDirInUseError || typeof err.statusCode === 'number' || err.message !== '') {
      process.stderr.write(`tessera: ${err.message}\n`)
      return 1
    }
    throw error
  }
}

process.exitCode = await main(process.argv.slice(2))
