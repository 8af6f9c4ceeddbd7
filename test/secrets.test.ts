import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { delimiter, dirname } from 'node:path'
import { Writable } from 'node:stream'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { maskUrl } from '../src/http/log-serializers.js'
import { maskSecrets } from '../src/services/secret-mask.js'
import { base62, generateToken } from '../src/services/token-format.js'
import { basic, bearer, buildWith, form, seedUser, typescriptCommand } from './helper.js'
import { signIn } from './web/helper.js'

/**
 * Issue 12, deliverable 3 — secrets in logs, tested: a scripted session through every route,
 * with good, bad and misplaced credentials, the web sign-in and the CLI; then a search of
 * everything the service printed (every log line, at trace) and stored (the audit table) for
 * every secret the session used or was given. The expected number of hits is zero.
 */

// Every CLI call boots the embedded PostgreSQL from disk: a few seconds each, more under load.
t.setTimeout(300_000)

/** Every secret the session handled, by value, with the kind a failure names it by. */
const secrets = new Map<string, string>()

function keep (kind: string, value: string | undefined | null): string {
  if (value === undefined || value === null || value === '') throw new Error(`no ${kind} to keep`)
  // Short values would match by accident: every secret in this script is long and distinctive.
  if (value.length < 12) throw new Error(`a ${kind} of ${value.length} characters is too short to search for`)
  if (!secrets.has(value)) secrets.set(value, kind)
  return value
}

function unique (label: string): string {
  return `${label}-${randomBytes(6).toString('hex')}`
}

/** Anything in an answer that is shaped like a secret Tessera hands out. */
const ISSUED = /[a-z][a-z0-9]{1,17}_[0-9A-Za-z]{38,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g

/** Keeps the secrets an answer carries: tokens, client secrets, session cookies, CSRF tokens. */
function harvest (res: LightMyRequestResponse): void {
  for (const match of res.body.matchAll(ISSUED)) keep(match[0].startsWith('eyJ') ? 'JWT' : match[0].includes('cs_') ? 'client secret' : 'token', match[0])
  const setCookie = res.headers['set-cookie']
  for (const cookie of Array.isArray(setCookie) ? setCookie : setCookie === undefined ? [] : [setCookie]) {
    const value = cookie.split(';')[0]?.split('=')[1] ?? ''
    if (value !== '') keep('session cookie', value)
  }
  if (res.headers['content-type']?.toString().includes('json') === true && res.body.includes('csrf_token')) keep('CSRF token', res.json().csrf_token)
}

const logs: string[] = []
const stream = new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString('utf8')); done() } })

const METRICS_TOKEN = keep('metrics token', unique('metrics-scraper-secret'))
const HMAC_KEY = keep('HMAC key', `hmac-${base62(40)}`)
const { app } = await buildWith(t, {
  RATE_LIMIT_PASSWORD_PER_USER: '1000',
  RATE_LIMIT_PASSWORD_PER_IP: '1000',
  RATE_LIMIT_CLIENT_FAILURES_PER_IP: '1000',
  METRICS_TOKEN,
  TOKEN_HMAC_KEY: HMAC_KEY
}, { logger: { level: 'trace', stream } })

/** One request of the script: its credentials are kept, its answer checked and harvested. */
async function call (status: number | number[], options: InjectOptions & { headers?: Record<string, string> }): Promise<LightMyRequestResponse> {
  const headers = options.headers ?? {}
  if (headers.authorization !== undefined) keep('Authorization header', headers.authorization)
  if (headers['x-csrf-token'] !== undefined && headers['x-csrf-token'].length >= 12) keep('CSRF token', headers['x-csrf-token'])
  const res = await app.inject(options)
  const expected = Array.isArray(status) ? status : [status]
  // Masked: a failing step must not print the secrets it carries.
  if (!expected.includes(res.statusCode)) throw new Error(`${String(options.method)} ${maskUrl(String(options.url))} answered ${res.statusCode}, not ${expected.join(' or ')}: ${maskSecrets(res.body.slice(0, 300))}`)
  harvest(res)
  return res
}

function formBody (fields: Record<string, string>): { payload: string, headers: Record<string, string> } {
  return form(fields)
}

const ROOT_PASSWORD = keep('password', unique('root-password'))
const ALICE_PASSWORD = keep('password', unique('alice-password'))
const ALICE_NEW_PASSWORD = keep('password', unique('alice-new-password'))
const WRONG_PASSWORD = keep('password', unique('wrong-password'))
const TYPED_AS_USERNAME = keep('password', `Tr0ub4dor&3 ${randomBytes(4).toString('hex')}!`)

await seedUser(app, 'root', { password: ROOT_PASSWORD, admin: true })
const ORIGIN = 'http://localhost:80'

t.test('a scripted session through every route', async (t) => {
  // --- Personal tokens with a password (Forgejo style) -------------------------------------
  const rootBasic = basic('root', ROOT_PASSWORD)
  const adminToken = (await call(201, { method: 'POST', url: '/api/v1/users/root/tokens', headers: { authorization: rootBasic }, payload: { name: 'admin', scopes: ['admin', 'introspect', 'read:tokens', 'write:tokens'] } })).json().token as string
  const admin = { authorization: bearer(adminToken) }

  // --- Administration -------------------------------------------------------------------------
  await call(201, { method: 'POST', url: '/api/v1/admin/users', headers: admin, payload: { username: 'alice', email: 'alice@example.com', password: ALICE_PASSWORD } })
  await call(201, { method: 'POST', url: '/api/v1/admin/users', headers: admin, payload: { username: 'ci-bot' } })
  await call(200, { method: 'GET', url: '/api/v1/admin/users?q=ali&limit=5', headers: admin })
  await call(200, { method: 'GET', url: '/api/v1/admin/users/alice', headers: admin })
  await call(200, { method: 'PATCH', url: '/api/v1/admin/users/alice', headers: admin, payload: { password: ALICE_NEW_PASSWORD } })
  const botToken = (await call(201, { method: 'POST', url: '/api/v1/admin/users/ci-bot/tokens', headers: admin, payload: { name: 'deploy', scopes: ['read:repository'] } })).json()
  await call(201, { method: 'POST', url: '/api/v1/admin/users/ci-bot/tokens', headers: admin, payload: { name: 'spare', scopes: ['read:repository'] } })
  await call(200, { method: 'GET', url: '/api/v1/admin/users/ci-bot/tokens', headers: admin })
  await call(200, { method: 'POST', url: '/api/v1/admin/tokens/lookup', headers: admin, payload: { tokens: [botToken.token, generateToken('tsr'), 'not-a-token-at-all'] } })
  await call([200, 204], { method: 'DELETE', url: '/api/v1/admin/users/ci-bot/tokens/spare', headers: admin })
  await call(200, { method: 'POST', url: '/api/v1/admin/tokens/revoke', headers: admin, payload: { token: botToken.token } })
  const service = (await call(201, { method: 'POST', url: '/api/v1/admin/applications', headers: admin, payload: { name: 'billing-api', scopes: ['introspect', 'read:repository'] } })).json()
  const jwtApp = (await call(201, { method: 'POST', url: '/api/v1/admin/applications', headers: admin, payload: { name: 'jwt-api', scopes: ['read:repository'], token_format: 'jwt' } })).json()
  const doomed = (await call(201, { method: 'POST', url: '/api/v1/admin/applications', headers: admin, payload: { name: 'doomed', scopes: ['introspect'] } })).json()
  await call(200, { method: 'GET', url: '/api/v1/admin/applications', headers: admin })
  await call(200, { method: 'GET', url: `/api/v1/admin/applications/${service.id as string}`, headers: admin })
  await call(200, { method: 'PATCH', url: `/api/v1/admin/applications/${service.id as string}`, headers: admin, payload: { name: 'billing' } })
  const rotatedSecret = (await call([200, 201], { method: 'POST', url: `/api/v1/admin/applications/${doomed.id as string}/secret`, headers: admin })).json().client_secret as string
  await call([200, 204], { method: 'DELETE', url: `/api/v1/admin/applications/${doomed.id as string}`, headers: admin })
  t.ok(secrets.has(rotatedSecret), 'a rotated secret is kept too')

  // --- Alice's own tokens -------------------------------------------------------------------
  const aliceBasic = basic('alice', ALICE_NEW_PASSWORD)
  const created = (await call(201, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: 'laptop', scopes: ['read:tokens', 'write:tokens', 'read:repository'] } })).json()
  const alice = { authorization: bearer(created.token) }
  await call(201, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: 'old-laptop', scopes: ['read:tokens'] } })
  await call(200, { method: 'GET', url: '/api/v1/users/alice/tokens?page=1&limit=10', headers: { authorization: aliceBasic } })
  await call(200, { method: 'GET', url: '/api/v1/users/alice/tokens', headers: alice })
  await call([200, 204], { method: 'DELETE', url: '/api/v1/users/alice/tokens/old-laptop', headers: { authorization: aliceBasic } })
  await call(200, { method: 'GET', url: '/api/v1/tokens?limit=5', headers: alice })
  await call(200, { method: 'GET', url: `/api/v1/tokens/${created.id as string}`, headers: alice })
  const spare = (await call(201, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: 'spare', scopes: ['read:tokens'] } })).json()
  const rotated = (await call(201, { method: 'POST', url: `/api/v1/tokens/${spare.id as string}/rotate`, headers: alice, payload: { grace_period: 60 } })).json()
  await call(200, { method: 'POST', url: `/api/v1/tokens/${rotated.id as string}/invalidate`, headers: alice })
  await call(200, { method: 'GET', url: '/api/v1/token-policy' })

  // --- OAuth: client credentials, introspection, token info, revocation, discovery ------------
  const serviceBasic = basic(service.client_id, service.client_secret)
  const grant = formBody({ grant_type: 'client_credentials', scope: 'read:repository' })
  const accessToken = (await call(200, { method: 'POST', url: '/oauth/token', payload: grant.payload, headers: { ...grant.headers, authorization: serviceBasic } })).json().access_token as string
  const posted = formBody({ grant_type: 'client_credentials', client_id: jwtApp.client_id, client_secret: jwtApp.client_secret })
  const jwt = (await call(200, { method: 'POST', url: '/oauth/token', ...posted })).json().access_token as string
  t.match(jwt, /^eyJ/, 'the JWT application gets a JWT')
  for (const token of [created.token, accessToken, jwt, generateToken('tsr')]) {
    const basicBody = formBody({ token })
    await call(200, { method: 'POST', url: '/oauth/introspect', payload: basicBody.payload, headers: { ...basicBody.headers, authorization: serviceBasic } })
    const postBody = formBody({ token, client_id: service.client_id, client_secret: service.client_secret })
    await call(200, { method: 'POST', url: '/oauth/introspect', ...postBody })
    await call(200, { method: 'POST', url: '/oauth/introspect', payload: basicBody.payload, headers: { ...basicBody.headers, ...admin } })
  }
  await call(200, { method: 'GET', url: '/oauth/token/info', headers: alice })
  await call(200, { method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(jwt) } })
  await call(200, { method: 'GET', url: '/auth/verify?scope=read:repository', headers: alice })
  await call(200, { method: 'POST', url: '/auth/verify/v1/repositories', headers: { ...alice, 'tessera-require-scope': 'read:repository' } })
  await call(403, { method: 'GET', url: '/auth/verify?scope=admin', headers: alice })
  const revokeOwn = formBody({ token: accessToken })
  await call(200, { method: 'POST', url: '/oauth/revoke', payload: revokeOwn.payload, headers: { ...revokeOwn.headers, authorization: serviceBasic } })
  const selfToken = (await call(201, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: 'self-revoking', scopes: ['read:tokens'] } })).json().token as string
  await call(200, { method: 'POST', url: '/oauth/revoke', ...formBody({ token: selfToken }) })
  await call(200, { method: 'GET', url: '/.well-known/oauth-authorization-server' })
  await call(200, { method: 'GET', url: '/.well-known/jwks.json' })

  // --- The web page: sign in, create a token with the session, sign out ------------------------
  await call([200, 404], { method: 'GET', url: '/settings/tokens' })
  const session = await signIn(app, 'alice', ALICE_NEW_PASSWORD)
  harvest(session.response)
  keep('session cookie', session.secret)
  keep('CSRF token', session.csrf)
  const same = { cookie: session.cookie, origin: ORIGIN, 'sec-fetch-site': 'same-origin', 'x-csrf-token': session.csrf }
  await call(200, { method: 'GET', url: '/api/v1/session', headers: { cookie: session.cookie } })
  await call(200, { method: 'GET', url: '/api/v1/tokens', headers: { cookie: session.cookie } })
  const fromPage = (await call(201, { method: 'POST', url: '/api/v1/tokens', headers: same, payload: { name: 'from-the-page', scopes: ['read:tokens'] } })).json()
  await call(201, { method: 'POST', url: `/api/v1/tokens/${fromPage.id as string}/rotate`, headers: same, payload: {} })
  await call(204, { method: 'DELETE', url: '/api/v1/session', headers: same })

  // --- Operations ---------------------------------------------------------------------------
  await call(200, { method: 'GET', url: '/metrics', headers: { authorization: bearer(METRICS_TOKEN) } })
  await call(200, { method: 'GET', url: '/healthz' })
  await call([200, 503], { method: 'GET', url: '/readyz' })
  await call(200, { method: 'GET', url: '/api/v1/admin/audit?limit=50', headers: admin })

  // --- Misplaced, wrong and malformed credentials ----------------------------------------------
  const aliceToken = created.token as string
  const clientSecret = service.client_secret as string
  // A client secret as client_id, in the form and in Basic; a token as client_id.
  await call(401, { method: 'POST', url: '/oauth/introspect', ...formBody({ token: aliceToken, client_id: clientSecret, client_secret: WRONG_PASSWORD }) })
  const swapped = formBody({ token: aliceToken })
  await call(401, { method: 'POST', url: '/oauth/introspect', payload: swapped.payload, headers: { ...swapped.headers, authorization: basic(clientSecret, service.client_id) } })
  await call(401, { method: 'POST', url: '/oauth/token', payload: grant.payload, headers: { ...grant.headers, authorization: basic(aliceToken, clientSecret) } })
  await call(401, { method: 'POST', url: '/oauth/revoke', ...formBody({ token: aliceToken, client_id: aliceToken, client_secret: clientSecret }) })
  // A token as the {token} of the DELETE routes, and in paths that do not exist.
  await call(404, { method: 'DELETE', url: `/api/v1/users/alice/tokens/${aliceToken}`, headers: { authorization: aliceBasic } })
  await call(404, { method: 'DELETE', url: `/api/v1/users/alice/tokens/${aliceToken}`, headers: alice })
  await call(404, { method: 'DELETE', url: `/api/v1/admin/users/alice/tokens/${aliceToken}`, headers: admin })
  await call(414, { method: 'DELETE', url: `/api/v1/admin/users/alice/tokens/${jwt}`, headers: admin })
  await call(404, { method: 'GET', url: `/api/v1/users/alice/tokens/${aliceToken}` })
  await call(404, { method: 'GET', url: `/oauth/${clientSecret}` })
  await call(400, { method: 'GET', url: `/api/v1/tokens/${aliceToken}`, headers: alice })
  await call(400, { method: 'GET', url: `/api/v1/admin/applications/${clientSecret}`, headers: admin })
  // Tokens, secrets and passwords in query strings.
  await call([200, 401], { method: 'GET', url: `/oauth/token/info?access_token=${aliceToken}` })
  await call(200, { method: 'GET', url: `/api/v1/tokens?access_token=${aliceToken}&password=${ALICE_NEW_PASSWORD}&client_secret=${clientSecret}`, headers: alice })
  await call(200, { method: 'GET', url: `/api/v1/admin/audit?actor=${encodeURIComponent(aliceToken)}&target=${clientSecret}`, headers: admin })
  await call(200, { method: 'GET', url: `/api/v1/admin/users?q=${encodeURIComponent(aliceToken.slice(0, 40))}`, headers: admin })
  // A password typed as the username; wrong passwords; another user's credentials.
  await call(401, { method: 'POST', url: '/api/v1/session', payload: { username: TYPED_AS_USERNAME, password: ALICE_NEW_PASSWORD } })
  await call(401, { method: 'POST', url: '/api/v1/session', payload: { username: 'alice', password: WRONG_PASSWORD } })
  await call(401, { method: 'POST', url: '/api/v1/session', payload: { username: 'alice', password: ALICE_PASSWORD } })
  await call(403, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: basic(TYPED_AS_USERNAME, ALICE_NEW_PASSWORD) }, payload: { name: 'x', scopes: ['read:tokens'] } })
  await call(401, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: basic('alice', WRONG_PASSWORD) }, payload: { name: 'x', scopes: ['read:tokens'] } })
  await call(401, { method: 'GET', url: '/api/v1/users/alice/tokens', headers: { authorization: basic('alice', aliceToken) } })
  await call(403, { method: 'GET', url: '/api/v1/users/root/tokens', headers: { authorization: basic('alice', ALICE_NEW_PASSWORD) } })
  // Authorization headers of every kind, right and wrong, where they do not belong.
  const headersOfEveryKind = [
    bearer(ALICE_NEW_PASSWORD),
    bearer(clientSecret),
    bearer(`${aliceToken.slice(0, -1)}${aliceToken.endsWith('A') ? 'B' : 'A'}`),
    bearer(`${aliceToken} ${ALICE_NEW_PASSWORD}`),
    `bearer ${generateToken('tsr')}`,
    `Token ${aliceToken}`,
    `Digest username="alice", response="${WRONG_PASSWORD}"`,
    `Basic ${Buffer.from(`alice${ALICE_NEW_PASSWORD}`).toString('base64')}`,
    `Basic !${ALICE_NEW_PASSWORD}`,
    aliceToken,
    basic(service.client_id, `${clientSecret}x`)
  ]
  for (const authorization of headersOfEveryKind) {
    await call([400, 401, 403], { method: 'GET', url: '/oauth/token/info', headers: { authorization } })
    await call([400, 401, 403], { method: 'GET', url: '/api/v1/tokens', headers: { authorization } })
    await call([400, 401, 403], { method: 'GET', url: '/api/v1/admin/users', headers: { authorization } })
    await call([200, 400, 401, 403], { method: 'GET', url: '/auth/verify', headers: { authorization } })
    const body = formBody({ token: aliceToken })
    await call([400, 401, 403], { method: 'POST', url: '/oauth/introspect', payload: body.payload, headers: { ...body.headers, authorization } })
    await call([400, 401, 403], { method: 'GET', url: '/metrics', headers: { authorization } })
  }
  // A token where the session cookie or the CSRF token goes; a secret as a JSON field name; JSON that does not parse.
  await call(401, { method: 'GET', url: '/api/v1/session', headers: { cookie: `tessera_session=${aliceToken}` } })
  const again = await signIn(app, 'alice', ALICE_NEW_PASSWORD)
  keep('session cookie', again.secret)
  keep('CSRF token', again.csrf)
  await call(403, { method: 'POST', url: '/api/v1/tokens', headers: { ...same, cookie: again.cookie, 'x-csrf-token': aliceToken }, payload: { name: 'csrf', scopes: ['read:tokens'] } })
  await call(400, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: 'extra', scopes: ['read:tokens'], [aliceToken]: ALICE_NEW_PASSWORD } })
  await call(400, { method: 'POST', url: '/api/v1/admin/users', headers: { ...admin, 'content-type': 'application/json' }, payload: `{"username":"eve","password":"${WRONG_PASSWORD}"` })
  await call(400, { method: 'POST', url: '/api/v1/admin/users', headers: admin, payload: { username: aliceToken, password: WRONG_PASSWORD } })
  await call(201, { method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: aliceBasic }, payload: { name: generateToken('tsr'), scopes: ['read:tokens'] } })

  t.ok(secrets.size > 40, `${secrets.size} secrets to look for`)
})

/** The audit table as text: every column of every row. */
async function auditTableText (): Promise<string> {
  // Failed authentications are written after the answer (best effort): give them a moment.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const rows = await app.orm.em.getConnection().execute<Array<{ row: string }>>('select row_to_json(a)::text as row from audit_events a')
  return rows.map((row) => row.row).join('\n')
}

/** The ways a secret could be written: as is, in base64 (a Basic header), form- or URL-encoded. */
function spellings (secret: string): string[] {
  return [...new Set([secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret), new URLSearchParams({ x: secret }).toString().slice(2)])]
}

/** `kind …last4 in place`, for every secret found: never the secret itself. */
function leaks (places: Record<string, string>): string[] {
  const found: string[] = []
  for (const [secret, kind] of secrets) {
    for (const [place, text] of Object.entries(places)) {
      if (spellings(secret).some((spelling) => text.includes(spelling))) found.push(`${kind} …${secret.slice(-4)} in ${place}`)
    }
  }
  return found
}

t.test('deliverable 3: no secret of the session is in any log line or audit event', async (t) => {
  const audit = await auditTableText()
  t.ok(logs.length > 100, `${logs.length} log lines written`)
  t.ok(audit.includes('"action":"auth.failed"') && audit.includes('"action":"token.created"'), 'the audit table holds the session')
  t.strictSame(leaks({ 'the log': logs.join(''), 'the audit table': audit }), [], 'zero hits')
})

t.test('deliverable 3: the CLI prints no secret on stderr or in its log', async (t) => {
  const dataDir = t.testdir()
  const password = keep('password', unique('cli-password'))
  const env = { LOG_LEVEL: 'trace' }
  const internal = await cli(['ensure-internal-app'], { dataDir, env })
  t.equal(internal.code, 0, succeeded(internal))
  const created = await cli(['user', 'create', '--username', 'ops', '--password-stdin'], { dataDir, env, input: `${password}\n` })
  t.equal(created.code, 0, succeeded(created))
  const generated = await cli(['token', 'generate', '--username', 'ops', '--name', 'deploy', '--scopes', 'read:tokens', '--raw'], { dataDir, env })
  t.equal(generated.code, 0, succeeded(generated))
  const token = keep('token', generated.stdout.trim())
  t.match(token, /^tsr_[0-9A-Za-z]{38}$/, 'stdout is the token: it is what the command is for')
  const application = await cli(['application', 'create', '--name', 'cli-app', '--scopes', 'introspect'], { dataDir, env })
  t.equal(application.code, 0, succeeded(application))
  keep('client secret', /client_secret: (\S+)/.exec(application.stdout)?.[1])
  const stderr = [internal, created, generated, application].map((result) => result.stderr).join('')
  t.match(stderr, /"audit":\{/, 'its audit lines are there to be searched')
  t.strictSame(leaks({ 'the CLI\'s stderr': stderr }), [], 'zero hits')
})

interface CliResult { code: number | null, stdout: string, stderr: string }

/** The assertion message for a CLI call: its stderr (masked) only when it failed. */
function succeeded (result: CliResult): string {
  return result.code === 0 ? 'exit 0' : `exit ${String(result.code)}: ${maskSecrets(result.stderr)}`
}

/** Runs the CLI as an operator would (as test/cli.test.ts does), on the embedded database in `dataDir`. */
async function cli (args: string[], options: { dataDir: string, input?: string, env?: Record<string, string> }): Promise<CliResult> {
  const [command, ...commandArgs] = typescriptCommand('src/cli/index.ts', ...args)
  const child = spawn(command, commandArgs, {
    cwd: process.cwd(),
    env: {
      ...process.env,
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
