import { request as httpRequest, STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { generateToken } from '../../src/services/token-format.js'
import { basic, bearer, build, PROBLEM_JSON, seedApplication, seedToken, seedUser } from '../helper.js'

/**
 * Hostile input on every route of the OpenAPI document: numbers PostgreSQL cannot hold, NUL
 * characters, bytes that are not UTF-8, over-long path parameters and 5 MiB bodies. Whatever
 * arrives, the answer is a 4xx in the route family's one shape (never a 5xx), and a refused
 * request writes nothing.
 */

const PASSWORD = 'correct horse battery'
const OAUTH_JSON = 'application/json; charset=utf-8'
const PROBLEM_KEYS = ['code', 'detail', 'instance', 'status', 'title', 'type']
const NUL_MESSAGE = 'must not contain NUL characters'
const SURROGATE_MESSAGE = 'must be well-formed Unicode text (no lone surrogate)'
const FINITE_MESSAGE = 'must be a finite number'
const DATE_MESSAGE = 'must be a date-time between years 0001 and 9999, without leap seconds'

// Generous password limits: this file sends hundreds of requests with the admin's password.
const app = await build(t, { RATE_LIMIT_PASSWORD_PER_IP: '1000000', RATE_LIMIT_PASSWORD_PER_USER: '1000000' })

await seedUser(app, 'root', { admin: true, password: PASSWORD })
const admin = await seedToken(app, 'root', { scopes: ['admin', 'read:tokens', 'write:tokens'] })
await seedUser(app, 'target', { password: PASSWORD })
const targetToken = await seedToken(app, 'target', { scopes: ['read:tokens'] })
const client = await seedApplication(app, ['introspect', 'read:repository'])
const managed = await seedApplication(app, ['read:repository'])
const hook = (await app.inject({ method: 'POST', url: '/api/v1/admin/webhooks', headers: { authorization: bearer(admin.token) }, payload: { url: 'https://hooks.example.test/tessera' } })).json() as { id: string }

// ---------------------------------------------------------------------------------------------
// The routes, from the OpenAPI document

interface SchemaObject {
  type?: string | string[]
  format?: string
  items?: SchemaObject
  anyOf?: SchemaObject[]
  oneOf?: SchemaObject[]
  properties?: Record<string, SchemaObject>
}

interface OpenApiOperation {
  parameters?: Array<{ in: string, name: string, schema?: SchemaObject }>
  requestBody?: { content: Record<string, { schema: SchemaObject }> }
}

type Family = 'rest' | 'oauth'

interface Operation {
  method: string
  /** The path as the document writes it: /api/v1/users/{username}/tokens. */
  path: string
  family: Family
  pathParams: string[]
  query: Array<{ name: string, schema: SchemaObject }>
  body: { media: 'json' | 'form', fields: Array<{ name: string, list: boolean }> } | null
}

function alternatives (schema: SchemaObject): SchemaObject[] {
  return [schema, ...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]
}

function hasType (schema: SchemaObject, type: string): boolean {
  return alternatives(schema).some((option) => option.type === type || (Array.isArray(option.type) && option.type.includes(type)))
}

function isStringList (schema: SchemaObject): boolean {
  return alternatives(schema).some((option) => option.type === 'array' && option.items !== undefined && hasType(option.items, 'string'))
}

function familyOf (path: string): Family {
  return /^\/(oauth\/|\.well-known\/|auth\/verify)/.test(path) ? 'oauth' : 'rest'
}

await app.ready()
const documentPaths = (app.swagger() as { paths: Record<string, Record<string, OpenApiOperation>> }).paths
const operations: Operation[] = Object.entries(documentPaths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, operation]) => {
    const parameters = operation.parameters ?? []
    const content = operation.requestBody?.content ?? {}
    const media = 'application/json' in content ? 'json' as const : 'application/x-www-form-urlencoded' in content ? 'form' as const : null
    const schema = media === 'json' ? content['application/json']?.schema : content['application/x-www-form-urlencoded']?.schema
    const fields = Object.entries(schema?.properties ?? {})
      .filter(([, property]) => hasType(property, 'string') || isStringList(property))
      .map(([name, property]) => ({ name, list: !hasType(property, 'string') }))
    return {
      method: method.toUpperCase(),
      path,
      family: familyOf(path),
      pathParams: parameters.filter((parameter) => parameter.in === 'path').map((parameter) => parameter.name),
      query: parameters.filter((parameter) => parameter.in === 'query').map((parameter) => ({ name: parameter.name, schema: parameter.schema ?? {} })),
      body: media === null ? null : { media, fields }
    }
  }))

t.test('the OpenAPI document lists the routes this file walks', async (t) => {
  const names = operations.map((operation) => `${operation.method} ${operation.path}`)
  for (const expected of ['GET /api/v1/tokens', 'DELETE /api/v1/admin/users/{username}/tokens/{token}', 'POST /oauth/introspect', 'PATCH /api/v1/admin/applications/{id}', 'GET /api/v1/admin/audit']) {
    t.ok(names.includes(expected), expected)
  }
  t.ok(operations.filter((operation) => operation.pathParams.length > 0).length >= 10, 'routes with path parameters')
  t.ok(operations.filter((operation) => operation.body !== null).length >= 10, 'routes with bodies')
})

// ---------------------------------------------------------------------------------------------
// Requests: valid defaults, authentication, and hostile variants

/** A valid value for each path parameter, so that only the hostile one is wrong. */
function defaultParam (path: string, name: string): string {
  if (name === 'username') return path.startsWith('/api/v1/users/') ? 'root' : 'target'
  if (name === 'token') return path.startsWith('/api/v1/users/') ? admin.id : targetToken.id
  if (name === 'id' && path.startsWith('/api/v1/admin/webhooks/')) return hook.id
  if (name === 'id') return path.startsWith('/api/v1/admin/applications/') ? managed.id : admin.id
  throw new Error(`no default for path parameter ${name} of ${path}`)
}

/** The path with every parameter at its default, except those in `overrides` (already URL-encoded). */
function pathOf (operation: Operation, overrides: Record<string, string> = {}): string {
  return operation.path.replace(/\{(\w+)\}/g, (_whole, name: string) => overrides[name] ?? encodeURIComponent(defaultParam(operation.path, name)))
}

/**
 * The admin's own credentials, in the form each route takes: a client's credentials in the form
 * on OAuth endpoints (added to the body), the password on the Basic routes, else the admin token.
 */
function credentialHeaders (operation: Operation): Record<string, string> {
  if (operation.family === 'oauth' && operation.path !== '/auth/verify') return {}
  if (operation.path.startsWith('/api/v1/users/')) return { authorization: basic('root', PASSWORD) }
  return { authorization: bearer(admin.token) }
}

let serial = 0
function unique (prefix: string): string {
  serial += 1
  return `${prefix}-${serial}`
}

/** A valid body for each route that takes one; `field` is the one about to be made hostile. */
function baseBody (operation: Operation, field: string, authenticated: boolean): Record<string, unknown> {
  const clientCredentials = authenticated ? { client_id: client.clientId, client_secret: client.clientSecret } : {}
  switch (`${operation.method} ${operation.path}`) {
    case 'POST /api/v1/users/{username}/tokens':
    case 'POST /api/v1/tokens':
    case 'POST /api/v1/admin/users/{username}/tokens':
      return { name: unique('hostile'), scopes: ['read:tokens'], audience: ['api.example.test'], expires_at: new Date(Date.now() + 86_400_000).toISOString() }
    case 'POST /api/v1/admin/users':
      return { username: unique('user'), email: `${unique('mail')}@example.test`, password: PASSWORD }
    case 'PATCH /api/v1/admin/users/{username}':
      return { email: 'target@example.test', password: PASSWORD }
    case 'POST /api/v1/admin/tokens/lookup':
    case 'POST /api/v1/admin/tokens/revoke':
      return field === 'tokens' ? { tokens: [generateToken('tsr')] } : { token: generateToken('tsr') }
    case 'POST /api/v1/admin/applications':
    case 'PATCH /api/v1/admin/applications/{id}':
      return { name: unique('app'), scopes: ['read:repository'], redirect_uris: ['https://app.example.test/callback'], introspection_audiences: ['api'], introspection_scopes: ['read:repository'], token_format: 'opaque' }
    case 'POST /api/v1/tokens/{id}/rotate':
      return { grace_period: 0 }
    case 'POST /api/v1/admin/webhooks':
    case 'PATCH /api/v1/admin/webhooks/{id}':
      return { url: 'https://hooks.example.test/tessera', events: ['token.revoked'], description: unique('hook'), enabled: true }
    case 'POST /api/v1/session':
      return { username: 'root', password: PASSWORD }
    case 'POST /oauth/introspect':
    case 'POST /oauth/revoke':
      return { token: generateToken('tsr'), token_type_hint: 'access_token', ...clientCredentials }
    case 'POST /oauth/token':
      return { grant_type: 'client_credentials', scope: 'read:repository', ...clientCredentials }
    default:
      throw new Error(`no base body for ${operation.method} ${operation.path}`)
  }
}

/** Hostile string values, as JS strings (NUL, lone surrogate) or raw bytes spliced into the encoded body. */
type Hostile = { label: string, value: string } | { label: string, bytes: Buffer }

// Long enough to pass a password's minimum length, so the value reaches the service.
const HOSTILE_STRINGS: Hostile[] = [
  { label: 'a NUL character', value: 'hostile-\u0000-value' },
  { label: 'a lone surrogate', value: 'hostile-\ud800-value' },
  { label: 'raw bytes that are not UTF-8 (0xFF 0xFE)', bytes: Buffer.concat([Buffer.from('hostile-'), Buffer.from([0xff, 0xfe]), Buffer.from('-value')]) }
]

const MARKER = 'HOSTILE_VALUE_MARKER'

/** The encoded body with `field` set to the hostile value (inside a one-item list for list fields). */
function hostileBody (operation: Operation, field: { name: string, list: boolean }, hostile: Hostile, authenticated: boolean): { payload: Buffer, contentType: string } {
  const value = 'value' in hostile ? hostile.value : MARKER
  const body = { ...baseBody(operation, field.name, authenticated), [field.name]: field.list ? [value] : value }
  const media = operation.body?.media ?? 'json'
  const text = media === 'json' ? JSON.stringify(body) : new URLSearchParams(body as Record<string, string>).toString()
  const [before = '', after = ''] = text.split(MARKER)
  const payload = 'bytes' in hostile ? Buffer.concat([Buffer.from(before), hostile.bytes, Buffer.from(after)]) : Buffer.from(text)
  return { payload, contentType: media === 'json' ? 'application/json' : 'application/x-www-form-urlencoded' }
}

// ---------------------------------------------------------------------------------------------
// Assertions

interface Counts { users: number, access_tokens: number, applications: number, audit_events: number }

/** Rows a refused request must not add; `auth.failed` events are written on purpose for failed credentials. */
async function counts (): Promise<Counts> {
  const [row] = await app.orm.em.getConnection().execute<Counts[]>(`select
    (select count(*) from users)::int as users,
    (select count(*) from access_tokens)::int as access_tokens,
    (select count(*) from applications)::int as applications,
    (select count(*) from audit_events where action <> 'auth.failed')::int as audit_events`)
  return row as Counts
}

/** A 4xx in the family's one shape. */
function assertRefusalShape (t: Test, status: number, headers: IncomingHttpHeaders | LightMyRequestResponse['headers'], text: string, family: Family): Record<string, unknown> {
  t.ok(status >= 400 && status < 500, `a 4xx (got ${status})`)
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    t.fail(`the body is JSON: ${text.slice(0, 200)}`)
  }
  if (family === 'rest') {
    t.equal(headers['content-type'], PROBLEM_JSON, 'problem+json')
    const keys = body.code === 'FST_ERR_VALIDATION' ? [...PROBLEM_KEYS, 'errors'].sort() : PROBLEM_KEYS
    t.strictSame(Object.keys(body).sort(), keys, 'exactly the problem keys')
    t.match(body, { type: 'about:blank', title: STATUS_CODES[status], status, code: String, detail: String, instance: String })
  } else {
    t.equal(headers['content-type'], OAUTH_JSON, 'OAuth JSON')
    t.equal(headers['cache-control'], 'no-store', 'never cached')
    t.strictSame(Object.keys(body).sort(), ['error', 'error_description'], 'exactly error and error_description')
    t.type(body.error, 'string')
    t.type(body.error_description, 'string')
  }
  return body
}

/**
 * Sends one hostile request: never a 5xx; a refusal has the family's shape and writes nothing.
 * Answers the response for sharper assertions.
 */
async function probe (t: Test, family: Family, request: InjectOptions): Promise<LightMyRequestResponse> {
  const before = await counts()
  const res = await app.inject(request)
  t.ok(res.statusCode < 500, `no 5xx (got ${res.statusCode}: ${res.body.slice(0, 300)})`)
  if (res.statusCode >= 400) {
    assertRefusalShape(t, res.statusCode, res.headers, res.body, family)
    t.strictSame(await counts(), before, 'nothing written')
  }
  return res
}

/** A 400 validation failure naming `path` with `message` (REST problem or OAuth description). */
function assertNamesField (t: Test, res: LightMyRequestResponse, family: Family, path: string, message?: string): void {
  t.equal(res.statusCode, 400, `400 naming ${path}`)
  if (res.statusCode !== 400) return
  const body = res.json() as { code?: string, errors?: Array<{ path: string, message: string }>, error?: string, error_description?: string }
  if (family === 'rest') {
    t.equal(body.code, 'FST_ERR_VALIDATION')
    t.ok(body.errors?.some((error) => error.path === path && (message === undefined || error.message === message)), `errors name ${path}${message !== undefined ? ` (${message})` : ''}: ${JSON.stringify(body.errors)}`)
  } else {
    t.equal(body.error, 'invalid_request')
    t.match(body.error_description, `${path} ${message ?? ''}`.trim())
  }
}

const authModes = [
  { label: 'as the admin', authenticated: true },
  { label: 'unauthenticated', authenticated: false }
]

// ---------------------------------------------------------------------------------------------
// Path parameters

const HOSTILE_PATH_VALUES = [
  { label: 'a NUL character (%00)', value: '%00' },
  { label: 'a byte that is not UTF-8 (%FF)', value: '%FF' },
  { label: 'a UTF-8-encoded lone surrogate (%ED%A0%80)', value: '%ED%A0%80' },
  { label: '201 characters', value: 'a'.repeat(201) }
]

t.test('hostile path parameters are refused before any route runs, or by validation', async (t) => {
  for (const operation of operations.filter((candidate) => candidate.pathParams.length > 0)) {
    t.test(`${operation.method} ${operation.path}`, async (t) => {
      for (const name of operation.pathParams) {
        for (const hostile of HOSTILE_PATH_VALUES) {
          for (const mode of authModes) {
            t.test(`${name}: ${hostile.label}, ${mode.label}`, async (t) => {
              const headers = mode.authenticated ? credentialHeaders(operation) : {}
              const body = operation.body === null ? {} : { payload: baseBody(operation, '', mode.authenticated) }
              const res = await probe(t, operation.family, { method: operation.method as InjectOptions['method'], url: pathOf(operation, { [name]: hostile.value }), headers, ...body })
              const problem = res.json() as { code?: string }
              if (hostile.value === '%FF' || hostile.value === '%ED%A0%80') {
                t.equal(res.statusCode, 400)
                t.equal(problem.code, 'TESSERA_BAD_URL')
              } else if (hostile.value.length > 200) {
                t.equal(res.statusCode, 414)
                t.equal(problem.code, 'TESSERA_PATH_PARAMETER_TOO_LONG')
              } else if (mode.authenticated) {
                assertNamesField(t, res, operation.family, `params/${name}`, NUL_MESSAGE)
              }
            })
          }
        }
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Query parameters

const HOSTILE_NUMBERS = ['1e400', '-1e400', 'NaN', '9007199254740993']
const HOSTILE_DATES = ['2026-12-31T23:59:60Z', '0000-01-01T00:00:00Z', '+275760-09-13T00:00:00.001Z']

t.test('hostile query parameters are 400 naming the parameter', async (t) => {
  for (const operation of operations.filter((candidate) => candidate.query.length > 0)) {
    t.test(`${operation.method} ${operation.path}`, async (t) => {
      for (const { name, schema } of operation.query) {
        const values = hasType(schema, 'integer') || hasType(schema, 'number')
          ? HOSTILE_NUMBERS
          : schema.format === 'date-time'
            ? HOSTILE_DATES
            : hasType(schema, 'string') || isStringList(schema) ? ['a\u0000b'] : []
        for (const value of values) {
          for (const mode of authModes) {
            t.test(`${name}=${JSON.stringify(value)}, ${mode.label}`, async (t) => {
              const url = `${pathOf(operation)}?${new URLSearchParams({ [name]: value }).toString()}`
              const headers = mode.authenticated ? credentialHeaders(operation) : {}
              const res = await probe(t, operation.family, { method: operation.method as InjectOptions['method'], url, headers })
              if (mode.authenticated) assertNamesField(t, res, operation.family, `querystring/${name}`)
            })
          }
        }
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Body fields

t.test('hostile string values in bodies are refused or stored, never a 5xx', async (t) => {
  for (const operation of operations.filter((candidate) => candidate.body !== null && candidate.body.fields.length > 0)) {
    t.test(`${operation.method} ${operation.path}`, async (t) => {
      for (const field of operation.body?.fields ?? []) {
        for (const hostile of HOSTILE_STRINGS) {
          for (const mode of authModes) {
            t.test(`${field.name}${field.list ? '[0]' : ''}: ${hostile.label}, ${mode.label}`, async (t) => {
              const { payload, contentType } = hostileBody(operation, field, hostile, mode.authenticated)
              const headers = { ...(mode.authenticated ? credentialHeaders(operation) : {}), 'content-type': contentType }
              const res = await probe(t, operation.family, { method: operation.method as InjectOptions['method'], url: pathOf(operation), headers, payload })
              if (mode.authenticated && hostile.label === 'a NUL character') {
                assertNamesField(t, res, operation.family, `body/${field.name}${field.list ? '/0' : ''}`, NUL_MESSAGE)
              }
              // JSON carries a lone surrogate as \ud800; a form cannot (URLSearchParams encodes it as U+FFFD).
              if (mode.authenticated && hostile.label === 'a lone surrogate' && operation.body?.media === 'json') {
                assertNamesField(t, res, operation.family, `body/${field.name}${field.list ? '/0' : ''}`, SURROGATE_MESSAGE)
              }
            })
          }
        }
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Regressions, by name

t.test('regressions', async (t) => {
  const asAdmin = { authorization: bearer(admin.token) }

  t.test('GET /api/v1/tokens?limit=1e400 is 400 naming querystring/limit (was a query with LIMIT Infinity)', async (t) => {
    const res = await probe(t, 'rest', { method: 'GET', url: '/api/v1/tokens?limit=1e400', headers: asAdmin })
    assertNamesField(t, res, 'rest', 'querystring/limit', FINITE_MESSAGE)
    t.strictSame((res.json() as { errors: Array<{ path: string }> }).errors.map((error) => error.path), ['querystring/limit'])
  })

  t.test('DELETE /api/v1/admin/users/{u}/tokens/%00 is 400 naming params/token (was a 500 from PostgreSQL)', async (t) => {
    const res = await probe(t, 'rest', { method: 'DELETE', url: '/api/v1/admin/users/target/tokens/%00', headers: asAdmin })
    assertNamesField(t, res, 'rest', 'params/token', NUL_MESSAGE)
    t.strictSame((res.json() as { errors: unknown }).errors, [{ path: 'params/token', message: NUL_MESSAGE }])
  })

  t.test('page=1e400 on a page/limit listing is 400 naming querystring/page', async (t) => {
    for (const url of ['/api/v1/admin/users?page=1e400', '/api/v1/admin/applications?page=1e400', '/api/v1/admin/users/target/tokens?page=1e400']) {
      const res = await probe(t, 'rest', { method: 'GET', url, headers: asAdmin })
      assertNamesField(t, res, 'rest', 'querystring/page', FINITE_MESSAGE)
    }
    const password = await probe(t, 'rest', { method: 'GET', url: '/api/v1/users/root/tokens?page=1e400', headers: { authorization: basic('root', PASSWORD) } })
    assertNamesField(t, password, 'rest', 'querystring/page', FINITE_MESSAGE)
  })

  t.test('a lone surrogate in a token name is 400, not stored as U+FFFD while the answer echoes the original', async (t) => {
    const res = await probe(t, 'rest', { method: 'POST', url: '/api/v1/admin/users/target/tokens', headers: asAdmin, payload: { name: 'x\ud800y', scopes: ['read:tokens'] } })
    assertNamesField(t, res, 'rest', 'body/name', SURROGATE_MESSAGE)
  })

  t.test('a leap second and year 0000 in a date filter are 400 naming the filter', async (t) => {
    const cases = [
      '/api/v1/admin/audit?created_after=2026-12-31T23:59:60Z',
      '/api/v1/admin/audit?created_before=0000-01-01T00:00:00Z',
      '/api/v1/admin/users/target/tokens?created_after=2026-12-31T23:59:60Z',
      '/api/v1/admin/users/target/tokens?expires_before=0000-01-01T00:00:00Z',
      '/api/v1/admin/users?created_after=0000-01-01T00:00:00Z'
    ]
    for (const url of cases) {
      const res = await probe(t, 'rest', { method: 'GET', url, headers: asAdmin })
      const name = url.replace(/^.*\?([a-z_]+)=.*$/, '$1')
      assertNamesField(t, res, 'rest', `querystring/${name}`, DATE_MESSAGE)
    }
  })
})

// ---------------------------------------------------------------------------------------------
// 5 MiB bodies through a real HTTP client

const FIVE_MIB = 5 * 1024 * 1024

interface OversizedAnswer {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** The first socket-level error the client saw (EPIPE, ECONNRESET…), or null. */
  socketError: string | null
  /** Whether the client handed the whole body to the connection. */
  wroteEverything: boolean
  /** Whether the response was read to its end. */
  responseComplete: boolean
}

/**
 * Sends a 5 MiB body with node:http as an ordinary client does — writing all of it (with a
 * Content-Length, or chunked) while the response is read — and reports what the client saw once
 * the connection has closed.
 */
async function sendOversized (port: number, options: { method: string, path: string, headers: Record<string, string>, media: 'json' | 'form', chunked: boolean }): Promise<OversizedAnswer> {
  const prefix = options.media === 'json' ? '{"name":"' : 'token='
  const body = Buffer.alloc(FIVE_MIB, 'a')
  body.write(prefix)
  const contentType = options.media === 'json' ? 'application/json' : 'application/x-www-form-urlencoded'
  return await new Promise((resolve) => {
    const answer: OversizedAnswer = { status: 0, headers: {}, body: '', socketError: null, wroteEverything: false, responseComplete: false }
    const request = httpRequest({
      host: '127.0.0.1',
      port,
      method: options.method,
      path: options.path,
      agent: false,
      headers: { ...options.headers, 'content-type': contentType, ...(options.chunked ? {} : { 'content-length': String(body.length) }) }
    })
    const timer = setTimeout(() => {
      answer.socketError ??= 'timeout: the connection was still open after 20 s'
      request.destroy()
    }, 20_000)
    request.on('response', (response) => {
      answer.status = response.statusCode ?? 0
      answer.headers = response.headers
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { answer.body += chunk })
      response.on('end', () => { answer.responseComplete = true })
      response.on('error', (error: NodeJS.ErrnoException) => { answer.socketError ??= error.code ?? error.message })
    })
    request.on('error', (error: NodeJS.ErrnoException) => { answer.socketError ??= error.code ?? error.message })
    request.on('finish', () => { answer.wroteEverything = true })
    request.on('close', () => {
      clearTimeout(timer)
      resolve(answer)
    })
    if (options.chunked) {
      for (let offset = 0; offset < body.length; offset += 64 * 1024) request.write(body.subarray(offset, offset + 64 * 1024))
      request.end()
    } else {
      request.end(body)
    }
  })
}

t.test('5 MiB bodies: a real client reads the whole refusal, with no socket error', async (t) => {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const bodyRoutes = operations.filter((operation) => operation.body !== null && (operation.method === 'POST' || operation.method === 'PATCH'))
  for (const required of ['POST /api/v1/admin/users', 'PATCH /api/v1/admin/users/{username}', 'POST /api/v1/users/{username}/tokens', 'POST /api/v1/tokens', 'POST /oauth/introspect', 'POST /oauth/token', 'POST /oauth/revoke', 'POST /api/v1/admin/tokens/lookup']) {
    t.ok(bodyRoutes.some((operation) => `${operation.method} ${operation.path}` === required), `${required} is covered`)
  }

  /** Routes that authenticate in an onRequest hook answer 401 before reading the body. */
  const authenticatesFirst = (path: string): boolean => path.startsWith('/api/v1/admin/') || path.startsWith('/api/v1/tokens')

  for (const operation of bodyRoutes) {
    const media = operation.body?.media ?? 'json'
    const variants = [
      { label: 'as the admin, with Content-Length', authenticated: true, chunked: false },
      { label: 'as the admin, chunked', authenticated: true, chunked: true },
      { label: 'unauthenticated, with Content-Length', authenticated: false, chunked: false },
      { label: 'unauthenticated, chunked', authenticated: false, chunked: true }
    ]
    for (const variant of variants) {
      t.test(`${operation.method} ${operation.path}, ${variant.label}`, async (t) => {
        const headers = variant.authenticated
          ? (operation.family === 'oauth' ? { authorization: basic(client.clientId, client.clientSecret) } : credentialHeaders(operation))
          : {}
        const before = await counts()
        const answer = await sendOversized(port, { method: operation.method, path: pathOf(operation), headers, media, chunked: variant.chunked })
        t.equal(answer.socketError, null, 'no socket error')
        t.equal(answer.wroteEverything, true, 'the client wrote the whole 5 MiB')
        t.equal(answer.responseComplete, true, 'the response was read to its end')
        const expected = !variant.authenticated && authenticatesFirst(operation.path) ? 401 : 413
        t.equal(answer.status, expected, `status ${expected}`)
        const body = assertRefusalShape(t, answer.status, answer.headers, answer.body, operation.family)
        if (expected === 413) {
          if (operation.family === 'rest') t.equal(body.code, 'FST_ERR_CTP_BODY_TOO_LARGE')
          else t.equal(body.error, 'invalid_request')
        } else {
          t.equal(body.code, 'TESSERA_TOKEN_REQUIRED')
        }
        t.strictSame(await counts(), before, 'nothing written')
      })
    }
  }
})

// ---------------------------------------------------------------------------------------------
// Property-based: arbitrary hostile values anywhere, on every route of the document

/** Values an attacker or a broken client sends, mixed by fast-check with arbitrary text. */
const HOSTILE_TEXT = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\u202eevil', 'zero\u200bwidth', '\ufeff', "'; drop table users; --", '" or 1=1 --',
  '../../etc/passwd', '..%2f..%2fetc%2fpasswd', '%00', '%FF', '__proto__', 'constructor', 'prototype', '1e400', '-1e400', '-0', 'NaN',
  'Infinity', '9007199254740993', '2026-02-30T00:00:00Z', '2026-12-31T23:59:60Z', '0000-01-01T00:00:00Z', '+275760-09-13T00:00:00Z',
  'tsr_' + 'A'.repeat(38), 'x'.repeat(5000), '<script>alert(1)</script>', '$' + '{jndi:ldap://x}', '\r\nX-Injected: 1'
]

const hostileText = fc.oneof(
  fc.constantFrom(...HOSTILE_TEXT),
  fc.string({ maxLength: 40, unit: 'binary' }),
  fc.string({ maxLength: 12 })
)

/** A JSON value: text, numbers JSON can carry, nesting 2 000 deep, `__proto__` keys, lists. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  hostileText,
  // JSON carries 9007199254740993 as text: JSON.parse rounds it, as a client's JSON would.
  fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -0, 0.5, -1, 0, 2 ** 31, true, false, null),
  fc.double(),
  fc.constant(JSON.parse('{"__proto__": {"admin": true}, "constructor": {"prototype": {"admin": true}}}')),
  fc.constant(JSON.parse('['.repeat(2000) + ']'.repeat(2000))),
  fc.array(hostileText, { maxLength: 4 }),
  fc.dictionary(hostileText, hostileText, { maxKeys: 3 })
)

type Mutation =
  | { where: 'path', value: string }
  | { where: 'query', name: string, value: string, duplicate: boolean }
  | { where: 'body', field: string, value: unknown }
  | { where: 'raw-body', payload: string }
  | { where: 'content-type', value: string }
  | { where: 'authorization', value: string }

function mutationFor (operation: Operation): fc.Arbitrary<Mutation> {
  const declared = operation.query.map((parameter) => parameter.name)
  const fields = operation.body?.fields.map((field) => field.name) ?? []
  const options: Array<fc.Arbitrary<Mutation>> = [
    fc.record({ where: fc.constant('query' as const), name: fc.oneof(fc.constantFrom('limit', 'page', 'token', 'access_token', ...declared), hostileText), value: hostileText, duplicate: fc.boolean() }),
    fc.record({ where: fc.constant('content-type' as const), value: fc.constantFrom('text/plain', 'application/xml', 'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '') }),
    fc.record({ where: fc.constant('authorization' as const), value: fc.oneof(hostileText.map((value) => `Bearer ${value}`), hostileText.map((value) => `Basic ${Buffer.from(value).toString('base64')}`), hostileText) })
  ]
  // Byte by byte: encodeURIComponent throws on a lone surrogate.
  const percentEncoded = (value: string): string => [...Buffer.from(value)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')
  if (operation.pathParams.length > 0) options.push(fc.record({ where: fc.constant('path' as const), value: hostileText.map((value) => value.startsWith('%') ? value : percentEncoded(value)) }))
  if (operation.body !== null) {
    options.push(fc.record({ where: fc.constant('body' as const), field: fc.oneof(fc.constantFrom(...(fields.length > 0 ? fields : ['name'])), fc.constantFrom('__proto__', 'constructor', 'admin', 'client_secret')), value: hostileJson }))
    options.push(fc.record({ where: fc.constant('raw-body' as const), payload: fc.constantFrom('', '{', 'null', '[]', '"text"', '{"a":' + '['.repeat(5000), 'a=%ZZ&b', '%FF=%FF', 'token=&token=&token=') }))
  }
  return fc.oneof(...options)
}

/** The request for one mutation: valid everywhere else, authenticated as the admin or not at all. */
function mutatedRequest (operation: Operation, mutation: Mutation, authenticated: boolean): InjectOptions {
  const media = operation.body?.media ?? null
  let url = pathOf(operation, mutation.where === 'path' ? Object.fromEntries(operation.pathParams.map((name) => [name, mutation.value])) : {})
  if (mutation.where === 'query') {
    const query = new URLSearchParams()
    query.append(mutation.name, mutation.value)
    if (mutation.duplicate) query.append(mutation.name, mutation.value)
    url += `?${query.toString()}`
  }
  const headers: Record<string, string> = authenticated ? credentialHeaders(operation) : {}
  if (mutation.where === 'authorization') headers.authorization = mutation.value
  let payload: string | undefined
  if (media !== null) {
    const body: Record<string, unknown> = baseBody(operation, mutation.where === 'body' ? mutation.field : '', authenticated)
    // defineProperty: a plain assignment to `__proto__` would set the prototype, not send the key.
    if (mutation.where === 'body') Object.defineProperty(body, mutation.field, { value: mutation.value, enumerable: true, writable: true, configurable: true })
    payload = media === 'json'
      ? JSON.stringify(body)
      : new URLSearchParams(Object.entries(body).map(([key, value]): [string, string] => [key, typeof value === 'string' ? value : JSON.stringify(value)])).toString()
    if (mutation.where === 'raw-body') payload = mutation.payload
    headers['content-type'] = media === 'json' ? 'application/json' : 'application/x-www-form-urlencoded'
  }
  if (mutation.where === 'content-type') {
    if (mutation.value === '') delete headers['content-type']
    else headers['content-type'] = mutation.value
  }
  return { method: operation.method as InjectOptions['method'], url, headers, ...(payload !== undefined ? { payload } : {}) }
}

/** The same checks as `probe`, as a property: throws (so fast-check can shrink) instead of asserting. */
async function holds (operation: Operation, request: InjectOptions): Promise<void> {
  const before = await counts()
  const res = await app.inject(request)
  const where = `${String(request.method)} ${String(request.url).slice(0, 120)} → ${res.statusCode} ${res.body.slice(0, 200)}`
  if (res.statusCode >= 500) throw new Error(`a 5xx: ${where}`)
  if (res.statusCode < 400) return
  let body: Record<string, unknown>
  try {
    body = JSON.parse(res.body) as Record<string, unknown>
  } catch {
    throw new Error(`not JSON: ${where}`)
  }
  const keys = Object.keys(body).sort().join(',')
  if (operation.family === 'rest' || res.headers['content-type'] === PROBLEM_JSON) {
    const expected = body.code === 'FST_ERR_VALIDATION' ? [...PROBLEM_KEYS, 'errors'].sort().join(',') : PROBLEM_KEYS.join(',')
    if (res.headers['content-type'] !== PROBLEM_JSON || keys !== expected) throw new Error(`not a problem: ${where}`)
  } else if (res.headers['content-type'] !== OAUTH_JSON || keys !== 'error,error_description') {
    throw new Error(`not an OAuth error: ${where}`)
  }
  const after = await counts()
  if (JSON.stringify(after) !== JSON.stringify(before)) throw new Error(`a refused request wrote something (${JSON.stringify(before)} → ${JSON.stringify(after)}): ${where}`)
}

t.test('fast-check: hostile values in any parameter of any route never reach a 5xx, keep the shape, write nothing when refused', async (t) => {
  // FC_SEED=<seed> replays a run; the seed of every run is printed.
  const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 2 ** 31)
  t.comment(`fast-check seed ${seed} (replay with FC_SEED=${seed})`)
  const property = fc.asyncProperty(
    fc.constantFrom(...operations).chain((operation) => fc.tuple(fc.constant(operation), mutationFor(operation), fc.boolean())),
    async ([operation, mutation, authenticated]) => { await holds(operation, mutatedRequest(operation, mutation, authenticated)) }
  )
  const runs = Number(process.env.FC_RUNS ?? 400)
  await fc.assert(property, { seed, numRuns: runs, endOnFailure: true })
  t.pass(`${runs} hostile requests across ${operations.length} routes`)
})
