import { readFileSync } from 'node:fs'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { WebhookEndpoint } from '../../src/entities/webhook.js'
import { basic, bearer, build, form, PROBLEM_JSON, seedApplication, seedToken, seedUser } from '../helper.js'
import { PASSWORD, signIn } from '../web/helper.js'

/*
 * The authorization matrix of the README ("## Authorization"), checked cell by cell: every route
 * against every kind of caller (issue 12, "Deliver 5"). The table is read from the README at test
 * time, so the documentation and the code cannot drift apart; a column, a route or a status the
 * test does not understand fails it, and so does a route of the API missing from the table.
 *
 * Every cell builds its caller afresh (a new user, new tokens, a new application), so a request
 * that changes state — revoke, invalidate, rotate, delete, an admin write — touches no other cell.
 */

// Sign-ins and Basic requests of several hundred cells come from one address: the password limits
// would answer 429 long before the end. They are not what this test is about.
const app = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '1000', RATE_LIMIT_PASSWORD_PER_IP: '100000' })

// ─── The table ────────────────────────────────────────────────────────────────────────────────

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** One operation of the OpenAPI document: `POST /api/v1/tokens/{id}/rotate`. */
interface Operation { method: Method, path: string }

function operationKey (operation: Operation): string {
  return `${operation.method} ${operation.path}`
}

/** `2xx` is any success; otherwise one exact status. */
type Expectation = { status: number } | { success: true }

interface Row {
  /** The first cell as written, to name the row in messages. */
  label: string
  operations: Operation[]
  expected: Map<string, Expectation>
}

interface Matrix {
  columns: string[]
  rows: Row[]
  /** What the test could not understand; the table test fails unless empty. */
  problems: string[]
}

/** The parenthesised notes the first cells may carry: each describes a request built below. */
const KNOWN_NOTES = new Set(['its own token', 'a `read:tokens` token', 'every route'])

/** Routes of the API the table leaves out on purpose (README: "`GET /metrics` takes no Tessera credential"). */
function leftOut (operation: Operation): boolean {
  const { method, path } = operation
  return (method === 'GET' && path === '/metrics') ||
    path.startsWith('/documentation') ||
    path.startsWith('/settings') ||
    (path === '/api/v1/session' && (method === 'POST' || method === 'DELETE'))
}

const METHODS = new Set<string>(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])

/** `/api/v1/users/{self}/tokens/{token}` and `/api/v1/users/{username}/tokens/{token}` are one route. */
function shape (path: string): string {
  return path.replace(/\{[^}]*\}/g, '{}')
}

function apiOperations (): Operation[] {
  const document = app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const operations: Operation[] = []
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of Object.keys(item)) {
      if (METHODS.has(method.toUpperCase())) operations.push({ method: method.toUpperCase() as Method, path })
    }
  }
  return operations
}

function splitRow (line: string): string[] {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim())
}

/** The operations one first cell names, or a problem. */
function parseRoutes (cell: string, operations: Operation[], problems: string[]): Operation[] {
  // A leading label ("Public:") only groups the routes.
  let rest = cell.replace(/^[A-Za-z][A-Za-z ]*:\s*/, '')
  rest = rest.replace(/\s*\(([^()]*)\)/g, (_whole, note: string) => {
    if (!KNOWN_NOTES.has(note)) problems.push(`row "${cell}": the note "(${note})" is not understood`)
    return ''
  })
  const found: Operation[] = []
  let method: Method | null = null
  for (const item of rest.split(',').map((part) => part.trim())) {
    const match = /^`(?:(GET|POST|PUT|PATCH|DELETE) )?(\/[^`\s]*)`$/.exec(item)
    if (match === null) {
      problems.push(`row "${cell}": "${item}" is not a route`)
      continue
    }
    // A route written without a method takes the one before it in the row ("all GET"); the first, all of them.
    if (match[1] !== undefined) method = match[1] as Method
    const written = match[2] as string
    const matches = written.endsWith('…')
      ? operations.filter((operation) => operation.path.startsWith(written.slice(0, -1)))
      : operations.filter((operation) => shape(operation.path) === shape(written))
    const named = matches.filter((operation) => method === null || operation.method === method)
    if (named.length === 0) problems.push(`row "${cell}": ${method === null ? '' : `${method} `}${written} is no route of the API`)
    found.push(...named)
  }
  return found
}

function parseStatus (cell: string): Expectation | null {
  if (cell === '2xx') return { success: true }
  return /^[1-5]\d\d$/.test(cell) ? { status: Number(cell) } : null
}

function readMatrix (operations: Operation[]): Matrix {
  const problems: string[] = []
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const lines = readme.split('\n')
  const section = lines.findIndex((line) => line.trim() === '## Authorization')
  if (section === -1) return { columns: [], rows: [], problems: ['README.md has no "## Authorization" section'] }
  const end = lines.findIndex((line, index) => index > section && line.startsWith('## '))
  const body = lines.slice(section + 1, end === -1 ? undefined : end)
  const header = body.findIndex((line) => line.startsWith('| Route |'))
  if (header === -1) return { columns: [], rows: [], problems: ['no table with a "| Route |" header under "## Authorization"'] }
  const columns = splitRow(body[header] as string).slice(1)
  for (const column of columns) {
    if (!(column in CALLERS)) problems.push(`the column "${column}" is no kind of caller this test knows`)
  }
  if (!/^\|(\s*:?-+:?\s*\|)+$/.test((body[header + 1] ?? '').trim())) problems.push('the table has no separator row under its header')
  const rows: Row[] = []
  for (const line of body.slice(header + 2)) {
    if (!line.trim().startsWith('|')) break
    const [label = '', ...cells] = splitRow(line)
    if (cells.length !== columns.length) {
      problems.push(`row "${label}" has ${cells.length} statuses for ${columns.length} columns`)
      continue
    }
    const expected = new Map<string, Expectation>()
    cells.forEach((cell, index) => {
      const expectation = parseStatus(cell)
      if (expectation === null) problems.push(`row "${label}", column "${columns[index]}": "${cell}" is not a status`)
      else expected.set(columns[index] as string, expectation)
    })
    rows.push({ label, operations: parseRoutes(label, operations, problems), expected })
  }
  if (rows.length === 0) problems.push('the table has no rows')
  return { columns, rows, problems }
}

// ─── The callers, as the README describes its columns ───────────────────────────────────────

interface Caller {
  column: string
  /** The user `{self}` names: the caller's own, or for an application a separate user. */
  username: string
  /** Credentials sent with every request. */
  headers: Record<string, string>
  /** The web session's CSRF token, sent with every state-changing request. */
  csrf?: string
  /** The token the caller authenticates with, when it is a bearer token. */
  ownToken?: string
  /** The application, for client columns. */
  application?: { clientId: string, clientSecret: string }
  /** Another token of `{self}`, issued before the caller changed (a suspended user gets no new token). */
  spare?: { token: string, id: string }
}

let serial = 0
/** A name no other cell uses (usernames: ASCII letters, digits, "-"). */
function unique (stem: string): string {
  serial += 1
  return `${stem.replace(/[^a-z0-9]+/gi, '-')}-${serial}`
}

await seedUser(app, 'root', { admin: true })
const root = bearer((await seedToken(app, 'root', { name: 'root', scopes: ['admin'] })).token)

/** A change made through the admin API, as an operator makes it. */
async function patchUser (username: string, payload: Record<string, unknown>): Promise<void> {
  const res = await app.inject({ method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: { authorization: root }, payload })
  if (res.statusCode !== 200) throw new Error(`PATCH ${username} answered ${res.statusCode}: ${res.body}`)
}

async function clientCredentialsToken (application: { clientId: string, clientSecret: string }): Promise<string> {
  const body = form({ grant_type: 'client_credentials' })
  const res = await app.inject({ method: 'POST', url: '/oauth/token', payload: body.payload, headers: { ...body.headers, authorization: basic(application.clientId, application.clientSecret) } })
  if (res.statusCode !== 200) throw new Error(`client_credentials answered ${res.statusCode}: ${res.body}`)
  return res.json().access_token
}

async function tokenHolder (column: string, scopes: string[], options: { admin?: boolean, audience?: string[] } = {}): Promise<Caller> {
  const username = unique(column)
  await seedUser(app, username, { admin: options.admin ?? false })
  const { token } = await seedToken(app, username, { scopes, ...(options.audience !== undefined ? { audience: options.audience } : {}) })
  return { column, username, headers: { authorization: bearer(token) }, ownToken: token }
}

async function application (column: string): Promise<Caller & { application: { clientId: string, clientSecret: string } }> {
  const username = unique(`${column}-user`)
  await seedUser(app, username)
  const { clientId, clientSecret } = await seedApplication(app, ['introspect', 'read:repository'])
  return { column, username, headers: { authorization: basic(clientId, clientSecret) }, application: { clientId, clientSecret } }
}

const CALLERS: Record<string, (column: string) => Promise<Caller>> = {
  async none (column) {
    const username = unique(column)
    await seedUser(app, username)
    return { column, username, headers: {} }
  },
  read: async (column) => await tokenHolder(column, ['read:tokens']),
  write: async (column) => await tokenHolder(column, ['write:tokens']),
  repo: async (column) => await tokenHolder(column, ['read:repository']),
  aud: async (column) => await tokenHolder(column, ['write:tokens'], { audience: ['billing'] }),
  admin: async (column) => await tokenHolder(column, ['admin'], { admin: true }),
  async demoted (column) {
    const caller = await tokenHolder(column, ['admin', 'write:tokens'], { admin: true })
    await patchUser(caller.username, { admin: false })
    return caller
  },
  async suspended (column) {
    const caller = await tokenHolder(column, ['write:tokens'])
    const spare = await seedToken(app, caller.username, { name: unique('spare'), scopes: ['read:tokens'] })
    await patchUser(caller.username, { suspended: true })
    return { ...caller, spare }
  },
  async password (column) {
    const username = unique(column)
    await seedUser(app, username, { password: PASSWORD })
    return { column, username, headers: { authorization: basic(username, PASSWORD) } }
  },
  async session (column) {
    const username = unique(column)
    await seedUser(app, username, { password: PASSWORD })
    const { cookie, csrf } = await signIn(app, username)
    return { column, username, headers: { cookie }, csrf }
  },
  client: async (column) => await application(column),
  async 'client token' (column) {
    const caller = await application(column)
    const token = await clientCredentialsToken(caller.application)
    return { ...caller, headers: { authorization: bearer(token) }, ownToken: token }
  }
}

// ─── The request each route gets ─────────────────────────────────────────────────────────────

/** The caller's credentials, its CSRF token on a state-changing request, and the body. */
function request (caller: Caller, method: Method, url: string, body: { json?: Record<string, unknown>, form?: Record<string, string> } = {}): InjectOptions {
  const headers: Record<string, string> = { ...caller.headers }
  if (caller.csrf !== undefined && method !== 'GET') headers['x-csrf-token'] = caller.csrf
  if (body.form !== undefined) {
    const encoded = form(body.form)
    return { method, url, headers: { ...headers, ...encoded.headers }, payload: encoded.payload }
  }
  return { method, url, headers, ...(body.json !== undefined ? { payload: body.json } : {}) }
}

/** Another token of `{self}` (a `read:tokens` one), live unless its owner was suspended. */
async function anotherToken (caller: Caller): Promise<{ token: string, id: string }> {
  return caller.spare ?? await seedToken(app, caller.username, { name: unique('other'), scopes: ['read:tokens'] })
}

/** The token a caller revokes: its own bearer token; an application's, one it owns; else a personal token of its user. */
async function ownRevocableToken (caller: Caller): Promise<string> {
  if (caller.ownToken !== undefined) return caller.ownToken
  if (caller.application !== undefined) return await clientCredentialsToken(caller.application)
  return (await anotherToken(caller)).token
}

/** A user for an admin route to act on, and so to change. */
async function target (): Promise<string> {
  const username = unique('target')
  await seedUser(app, username)
  return username
}

async function targetApplication (): Promise<string> {
  return (await seedApplication(app, ['introspect'])).id
}

/** A webhook endpoint for an admin route to act on (registered directly, as an admin would). */
async function targetWebhook (): Promise<string> {
  const em = app.orm.em.fork()
  const endpoint = em.create(WebhookEndpoint, { url: `https://hooks.example.test/${unique('hook')}`, description: null, events: [], enabled: true, secret: 'plain:whsec_c2VjcmV0' })
  await em.flush()
  return endpoint.id
}

const newToken = (): Record<string, unknown> => ({ name: unique('new'), scopes: ['read:tokens'] })

const REQUESTS: Record<string, (caller: Caller) => Promise<InjectOptions>> = {
  'POST /oauth/introspect': async (c) => request(c, 'POST', '/oauth/introspect', { form: { token: (await anotherToken(c)).token } }),
  'GET /oauth/token/info': async (c) => request(c, 'GET', '/oauth/token/info'),
  'GET /auth/verify': async (c) => request(c, 'GET', '/auth/verify'),
  'POST /oauth/token': async (c) => request(c, 'POST', '/oauth/token', { form: { grant_type: 'client_credentials' } }),
  'POST /oauth/revoke': async (c) => request(c, 'POST', '/oauth/revoke', { form: { token: await ownRevocableToken(c) } }),

  'POST /api/v1/users/{username}/tokens': async (c) => request(c, 'POST', `/api/v1/users/${c.username}/tokens`, { json: newToken() }),
  'GET /api/v1/users/{username}/tokens': async (c) => request(c, 'GET', `/api/v1/users/${c.username}/tokens`),
  'DELETE /api/v1/users/{username}/tokens/{token}': async (c) => request(c, 'DELETE', `/api/v1/users/${c.username}/tokens/${(await anotherToken(c)).id}`),

  'GET /api/v1/tokens': async (c) => request(c, 'GET', '/api/v1/tokens'),
  'GET /api/v1/tokens/{id}': async (c) => request(c, 'GET', `/api/v1/tokens/${(await anotherToken(c)).id}`),
  'POST /api/v1/tokens/{id}/invalidate': async (c) => request(c, 'POST', `/api/v1/tokens/${(await anotherToken(c)).id}/invalidate`),
  'POST /api/v1/tokens/{id}/rotate': async (c) => request(c, 'POST', `/api/v1/tokens/${(await anotherToken(c)).id}/rotate`, { json: {} }),
  'POST /api/v1/tokens': async (c) => request(c, 'POST', '/api/v1/tokens', { json: newToken() }),

  'POST /api/v1/admin/users': async (c) => request(c, 'POST', '/api/v1/admin/users', { json: { username: unique('created') } }),
  'GET /api/v1/admin/users': async (c) => request(c, 'GET', '/api/v1/admin/users'),
  'GET /api/v1/admin/users/{username}': async (c) => request(c, 'GET', `/api/v1/admin/users/${await target()}`),
  'PATCH /api/v1/admin/users/{username}': async (c) => {
    const username = await target()
    return request(c, 'PATCH', `/api/v1/admin/users/${username}`, { json: { email: `${username}@example.test` } })
  },
  'DELETE /api/v1/admin/users/{username}': async (c) => request(c, 'DELETE', `/api/v1/admin/users/${await target()}`),
  'GET /api/v1/admin/users/{username}/tokens': async (c) => request(c, 'GET', `/api/v1/admin/users/${await target()}/tokens`),
  'POST /api/v1/admin/users/{username}/tokens': async (c) => request(c, 'POST', `/api/v1/admin/users/${await target()}/tokens`, { json: newToken() }),
  'DELETE /api/v1/admin/users/{username}/tokens/{token}': async (c) => {
    const username = await target()
    const { id } = await seedToken(app, username, { name: unique('doomed') })
    return request(c, 'DELETE', `/api/v1/admin/users/${username}/tokens/${id}`)
  },
  'POST /api/v1/admin/tokens/lookup': async (c) => request(c, 'POST', '/api/v1/admin/tokens/lookup', { json: { token: (await seedToken(app, await target())).token } }),
  'POST /api/v1/admin/tokens/revoke': async (c) => request(c, 'POST', '/api/v1/admin/tokens/revoke', { json: { token: (await seedToken(app, await target())).token } }),
  'POST /api/v1/admin/applications': async (c) => request(c, 'POST', '/api/v1/admin/applications', { json: { name: unique('app'), scopes: ['introspect'] } }),
  'GET /api/v1/admin/applications': async (c) => request(c, 'GET', '/api/v1/admin/applications'),
  'GET /api/v1/admin/applications/{id}': async (c) => request(c, 'GET', `/api/v1/admin/applications/${await targetApplication()}`),
  'PATCH /api/v1/admin/applications/{id}': async (c) => request(c, 'PATCH', `/api/v1/admin/applications/${await targetApplication()}`, { json: { name: unique('renamed') } }),
  'DELETE /api/v1/admin/applications/{id}': async (c) => request(c, 'DELETE', `/api/v1/admin/applications/${await targetApplication()}`),
  'POST /api/v1/admin/applications/{id}/secret': async (c) => request(c, 'POST', `/api/v1/admin/applications/${await targetApplication()}/secret`),
  'GET /api/v1/admin/audit': async (c) => request(c, 'GET', '/api/v1/admin/audit'),
  'POST /api/v1/admin/webhooks': async (c) => request(c, 'POST', '/api/v1/admin/webhooks', { json: { url: 'https://hooks.example.test/new' } }),
  'GET /api/v1/admin/webhooks': async (c) => request(c, 'GET', '/api/v1/admin/webhooks'),
  'GET /api/v1/admin/webhooks/{id}': async (c) => request(c, 'GET', `/api/v1/admin/webhooks/${await targetWebhook()}`),
  'PATCH /api/v1/admin/webhooks/{id}': async (c) => request(c, 'PATCH', `/api/v1/admin/webhooks/${await targetWebhook()}`, { json: { enabled: false } }),
  'DELETE /api/v1/admin/webhooks/{id}': async (c) => request(c, 'DELETE', `/api/v1/admin/webhooks/${await targetWebhook()}`),
  'GET /api/v1/admin/webhooks/{id}/deliveries': async (c) => request(c, 'GET', `/api/v1/admin/webhooks/${await targetWebhook()}/deliveries`),

  'GET /api/v1/session': async (c) => request(c, 'GET', '/api/v1/session'),
  'GET /healthz': async (c) => request(c, 'GET', '/healthz'),
  'GET /livez': async (c) => request(c, 'GET', '/livez'),
  'GET /readyz': async (c) => request(c, 'GET', '/readyz'),
  'GET /.well-known/oauth-authorization-server': async (c) => request(c, 'GET', '/.well-known/oauth-authorization-server'),
  'GET /.well-known/jwks.json': async (c) => request(c, 'GET', '/.well-known/jwks.json'),
  'GET /api/v1/token-policy': async (c) => request(c, 'GET', '/api/v1/token-policy')
}

// ─── The checks ──────────────────────────────────────────────────────────────────────────────

const operations = apiOperations()
const matrix = readMatrix(operations)

t.test('the README\'s table is understood: every column a kind of caller, every route one of the API, every cell a status', async (t) => {
  t.strictSame(matrix.problems, [])
  const seen = new Map<string, string>()
  const unmatched: string[] = []
  for (const row of matrix.rows) {
    for (const operation of row.operations) {
      const key = operationKey(operation)
      if (seen.has(key)) unmatched.push(`${key} is in "${seen.get(key) as string}" and "${row.label}"`)
      seen.set(key, row.label)
      if (!(key in REQUESTS)) unmatched.push(`${key} (row "${row.label}") has no request in this test`)
    }
  }
  t.strictSame(unmatched, [], 'each route in one row, each with a request')
})

t.test('every route of the API is in the table, so a new route cannot be forgotten', async (t) => {
  const listed = new Set(matrix.rows.flatMap((row) => row.operations.map(operationKey)))
  const missing = operations.filter((operation) => !leftOut(operation) && !listed.has(operationKey(operation))).map(operationKey)
  t.strictSame(missing, [])
})

/** Errors of the OAuth endpoints (and the gateway check) are RFC 6749 §5.2; the REST API's RFC 9457. */
function isOAuthRoute (path: string): boolean {
  return path.startsWith('/oauth/') || path.startsWith('/auth/')
}

function assertCell (t: Test, operation: Operation, column: string, expectation: Expectation, res: LightMyRequestResponse): void {
  const cell = `${operationKey(operation)} as ${column}`
  const diagnostics = { body: res.body.slice(0, 500) }
  if ('status' in expectation) {
    t.equal(res.statusCode, expectation.status, `${cell} answers ${expectation.status}`, diagnostics)
  } else {
    t.ok(res.statusCode >= 200 && res.statusCode < 300, `${cell} answers 2xx (got ${res.statusCode})`, diagnostics)
  }
  if (res.statusCode === 401) t.ok(res.headers['www-authenticate'], `${cell}: a 401 carries WWW-Authenticate`)
  if (res.statusCode >= 400) {
    if (isOAuthRoute(operation.path)) {
      t.match(res.headers['content-type'], /^application\/json/, `${cell}: an OAuth error is JSON`)
      const body = res.json() as Record<string, unknown>
      t.strictSame(Object.keys(body).sort(), ['error', 'error_description'], `${cell}: an OAuth error is {error, error_description}`)
    } else {
      t.equal(res.headers['content-type'], PROBLEM_JSON, `${cell}: a REST error is problem+json`)
      t.match(res.json(), { type: 'about:blank', status: res.statusCode, code: String, instance: String }, `${cell}: a REST error is a problem`)
    }
  }
}

for (const row of matrix.rows) {
  for (const operation of row.operations) {
    const requestFor = REQUESTS[operationKey(operation)]
    if (requestFor === undefined) continue
    t.test(operationKey(operation), async (t) => {
      for (const column of matrix.columns) {
        const callerFor = CALLERS[column]
        const expectation = row.expected.get(column)
        if (callerFor === undefined || expectation === undefined) continue
        t.test(column, async (t) => {
          const caller = await callerFor(column)
          const res = await app.inject(await requestFor(caller))
          assertCell(t, operation, column, expectation, res)
        })
      }
    })
  }
}
