import { spawn } from 'node:child_process'
import { delimiter, dirname } from 'node:path'
import t from 'tap'
import { startEmbeddedPostgres } from '../src/db/embedded.js'
import { isWellFormedToken } from '../src/services/token-format.js'
import { basic, bearer, buildWith, introspection, typescriptCommand } from './helper.js'

// Every CLI call boots the embedded PostgreSQL from disk (the first one also creates it):
// about 3 s each on an idle machine, much more when the whole suite runs in parallel.
t.setTimeout(240_000)

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const BUILT_IN_SCOPES = 'admin introspect read:tokens write:tokens'

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs the CLI as an operator would, in a child process on the embedded database in
 * `dataDir` (DATABASE_URL emptied so a server configured for the test run is not used).
 */
async function cli (args: string[], options: { dataDir: string, input?: string, env?: Record<string, string> }): Promise<CliResult> {
  const [command, ...commandArgs] = typescriptCommand('src/cli/index.ts', ...args)
  const child = spawn(command, commandArgs, {
    cwd: process.cwd(),
    env: {
      ...process.env,
      // The same Node that runs the tests (the project's own, ≥ 24) runs the CLI.
      PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
      DATA_DIR: options.dataDir,
      DATABASE_URL: '',
      ARGON2_MEMORY_COST: '1024',
      ARGON2_TIME_COST: '1',
      ...options.env
    },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.end(options.input ?? '')
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  return { code, stdout, stderr }
}

t.test('usage and configuration errors are reported with distinct exit codes', async (t) => {
  const dataDir = t.testdir()
  const [help, unknownCommand, unknownOption, badConfig] = await Promise.all([
    cli(['--help'], { dataDir }),
    cli(['user', 'teleport', '--username', 'bob'], { dataDir }),
    cli(['user', 'create', '--username', 'bob', '--sudo'], { dataDir }),
    cli(['ensure-internal-app'], { dataDir, env: { PORT: '70000' } })
  ])

  t.equal(help.code, 0, '--help succeeds')
  t.match(help.stdout, /^Usage: tessera <command> \[options\]\n/)
  for (const command of ['migrate', 'ensure-internal-app', 'user create', 'user suspend', 'user demote', 'token generate', 'application create']) {
    t.match(help.stdout, `\n  ${command}`, `usage lists ${command}`)
  }
  t.equal(help.stderr, '')

  t.equal(unknownCommand.code, 2, 'an unknown command is a usage error')
  t.equal(unknownCommand.stdout, '')
  t.equal(unknownCommand.stderr, 'tessera: unknown command "user teleport"\nRun "tessera --help" for usage.\n')

  t.equal(unknownOption.code, 2, 'an unknown option is a usage error')
  t.match(unknownOption.stderr, /^tessera: Unknown option '--sudo'/)
  t.match(unknownOption.stderr, 'Run "tessera --help" for usage.')

  t.equal(badConfig.code, 78, 'a bad setting is a configuration error')
  t.match(badConfig.stderr, /^tessera: invalid configuration: PORT must be <= 65535\n$/)
  t.equal(badConfig.stdout, '')
})

t.test('an operator sets up the internal application, a user, a token and an application', async (t) => {
  const dataDir = t.testdir()

  const created = await cli(['ensure-internal-app'], { dataDir })
  t.equal(created.code, 0, created.stderr)
  t.equal(created.stdout, 'created the internal application\n')
  const again = await cli(['ensure-internal-app'], { dataDir })
  t.equal(again.code, 0, again.stderr)
  t.equal(again.stdout, 'the internal application already exists\n', 'running it twice is harmless')

  const user = await cli(['user', 'create', '--username', 'bob', '--password-stdin'], { dataDir, input: 'tr0ub4dor&3 horse\n' })
  t.equal(user.code, 0, user.stderr)
  t.match(user.stdout, new RegExp(`^created user bob \\(id ${UUID}\\)\\n$`), 'with a password, not an administrator')

  const duplicate = await cli(['user', 'create', '--username', 'BOB'], { dataDir })
  t.equal(duplicate.code, 1, 'a username taken in another case is refused')
  t.equal(duplicate.stdout, '')
  t.equal(duplicate.stderr, 'tessera: a user named "BOB" already exists (usernames are case-insensitive)\n')

  const token = await cli(['token', 'generate', '--username', 'bob', '--name', 'ci', '--scopes', 'read:tokens', '--raw'], { dataDir })
  t.equal(token.code, 0, token.stderr)
  const lines = token.stdout.split('\n')
  t.equal(lines.length, 2, 'exactly one line')
  t.equal(lines[1], '', 'ending with a newline')
  const plaintext = lines[0] ?? ''
  t.ok(isWellFormedToken(plaintext, 'tsr'), `${plaintext.slice(0, 4)}… is a well-formed token`)

  const badScope = await cli(['token', 'generate', '--username', 'bob', '--name', 'deploy', '--scopes', 'read:tokens launch:missiles'], { dataDir })
  t.equal(badScope.code, 1, 'an unknown scope is refused')
  t.equal(badScope.stderr, `tessera: unknown scope launch:missiles; valid scopes are: ${BUILT_IN_SCOPES}\n`)

  const application = await cli(['application', 'create', '--name', 'gw', '--scopes', 'introspect'], { dataDir })
  t.equal(application.code, 0, application.stderr)
  const match = /^created application "gw" \(id [0-9a-f-]{36}\)\nclient_id: +([0-9A-Za-z]{24})\nclient_secret: (tsrcs_[0-9A-Za-z]{40}) {2}\(shown once\)\n$/.exec(application.stdout)
  t.ok(match, `prints the client_id and the secret:\n${application.stdout}`)

  const suspended = await cli(['user', 'suspend', '--username', 'Bob'], { dataDir })
  t.equal(suspended.code, 0, suspended.stderr)
  t.equal(suspended.stdout, 'suspended bob\n', 'naming the account as it is stored')

  t.test('the server sees what the CLI did', async (t) => {
    const database = await startEmbeddedPostgres(dataDir)
    const { app } = await buildWith(t, {}, { db: { ...database, embedded: true }, internalApp: false })
    t.teardown(async () => { await database.close() })

    const password = await app.inject({
      method: 'POST',
      url: '/api/v1/users/bob/tokens',
      headers: { authorization: basic('bob', 'tr0ub4dor&3 horse') },
      payload: { name: 'x', scopes: ['read:tokens'] }
    })
    t.match({ status: password.statusCode, body: password.json() }, { status: 403, body: { detail: 'the account bob is suspended' } },
      'the password from stdin is accepted, and the suspension holds')

    const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(plaintext) } })
    t.match({ status: info.statusCode, body: info.json() }, { status: 401, body: { error: 'invalid_token' } }, 'the suspended user\'s token is inactive')

    const [, clientId = '', clientSecret = ''] = match ?? []
    const introspected = await introspection(app, plaintext, basic(clientId, clientSecret))
    t.strictSame({ status: introspected.statusCode, body: introspected.json() }, { status: 200, body: { active: false } },
      'the application authenticates with the printed secret; the token is inactive')
  })
})

t.test('the CLI refuses to suspend or demote the last active administrator, as the API does', async (t) => {
  const dataDir = t.testdir()
  t.equal((await cli(['user', 'create', '--username', 'root', '--admin'], { dataDir })).code, 0)

  const suspend = await cli(['user', 'suspend', '--username', 'root'], { dataDir })
  t.equal(suspend.code, 1, 'suspending the only admin fails')
  t.equal(suspend.stderr, 'tessera: root is the last active administrator; make another user an administrator first\n')
  const demote = await cli(['user', 'demote', '--username', 'root'], { dataDir })
  t.equal(demote.code, 1, 'demoting the only admin fails')
  t.equal(demote.stderr, 'tessera: root is the last active administrator; make another user an administrator first\n')

  t.equal((await cli(['user', 'create', '--username', 'deputy'], { dataDir })).code, 0)
  const promoted = await cli(['user', 'promote', '--username', 'deputy'], { dataDir })
  t.equal(promoted.code, 0, promoted.stderr)
  t.equal(promoted.stdout, 'promoted deputy\n')
  const demoted = await cli(['user', 'demote', '--username', 'root'], { dataDir })
  t.equal(demoted.code, 0, 'with another admin, root may be demoted')
  t.equal(demoted.stdout, 'demoted root\n')

  const database = await startEmbeddedPostgres(dataDir)
  const { app } = await buildWith(t, {}, { db: { ...database, embedded: true }, internalApp: false })
  t.teardown(async () => { await database.close() })
  const rows = await app.orm.em.getConnection().execute<Array<{ username: string, admin: boolean, suspended_at: Date | null }>>('select username, admin, suspended_at from users order by username')
  t.strictSame(rows.map((row) => [row.username, row.admin, row.suspended_at]), [['deputy', true, null], ['root', false, null]], 'nothing half-written by the refused commands')
  const events = await app.orm.em.getConnection().execute<Array<{ action: string, actor: string }>>("select action, actor from audit_events where action like 'user.%' order by id")
  t.strictSame(events.map((event) => `${event.actor} ${event.action}`), ['cli user.created', 'cli user.created', 'cli user.updated', 'cli user.updated'])
})
