import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import errorHandler from '../../plugins/app/error-handler.js'
import rateLimit from '../../plugins/external/rate-limit.js'
import { loadConfig } from '../../src/config.js'
import { Errors } from '../../src/errors.js'
import { isDatabaseUnavailable } from '../../src/http/error-reply.js'
import { serverOptions } from '../../src/options.js'
import { generateToken } from '../../src/services/token-format.js'
import { basic, bearer, buildWith, createTestDatabase, PROBLEM_JSON, seedUser, TEST_ENV } from '../helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const GENERIC_DETAIL = 'an unexpected error occurred; it has been logged'
const DATABASE_DETAIL = 'the database is unavailable; try again shortly'

/** A real connection failure from the PostgreSQL driver: nothing listens on port 1. */
async function connectToNowhere (): Promise<never> {
  const client = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:1/tessera', connectionTimeoutMillis: 2000 })
  await client.connect()
  throw new Error('unreachable: something listens on port 1')
}

/**
 * A small server with only the error handling: the rate-limit plugin it depends on, the
 * handler, and routes that fail in chosen ways. Logs are kept to check what reaches them.
 */
async function buildErrorServer (t: Test): Promise<{ server: FastifyInstance, logs: string[] }> {
  const logs: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      logs.push(String(chunk))
      callback()
    }
  })
  const server = Fastify(serverOptions(loadConfig(TEST_ENV), { level: 'info', stream }))
  await server.register(rateLimit)
  await server.register(errorHandler)
  server.get('/crash', async () => { throw new Error('secret detail') })
  server.get('/bad-gateway', async () => { throw Object.assign(new Error('upstream said secret detail'), { statusCode: 502 }) })
  server.get('/conflict', async () => { throw new Errors.TokenNameTaken('ci', 'alice') })
  server.get('/database', connectToNowhere)
  server.get('/oauth/crash', { config: { oauthErrors: true } }, async () => { throw new Error('secret detail') })
  server.get('/oauth/database', { config: { oauthErrors: true } }, connectToNowhere)
  await server.ready()
  t.teardown(async () => { await server.close() })
  return { server, logs }
}

t.test('isDatabaseUnavailable recognises connection failures and nothing else', async (t) => {
  const unavailable: Array<[string, unknown]> = [
    ['a MikroORM ConnectionException', Object.assign(new Error('x'), { name: 'ConnectionException' })],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['a reset connection', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['a connect timeout', Object.assign(new Error('x'), { code: 'ETIMEDOUT' })],
    ['a database host that does not resolve', Object.assign(new Error('getaddrinfo ENOTFOUND db'), { code: 'ENOTFOUND' })],
    ['a temporary DNS failure', Object.assign(new Error('getaddrinfo EAI_AGAIN db'), { code: 'EAI_AGAIN' })],
    ['an unreachable database host', Object.assign(new Error('x'), { code: 'EHOSTUNREACH' })],
    ['an administrator shutdown (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['a crash shutdown (57P02)', Object.assign(new Error('x'), { code: '57P02' })],
    ['a server starting up (57P03)', Object.assign(new Error('the database system is starting up'), { code: '57P03' })],
    ['a connection failure (08006)', Object.assign(new Error('x'), { code: '08006' })],
    ['a rejected connection (08004)', Object.assign(new Error('x'), { code: '08004' })],
    ['too many connections (53300)', Object.assign(new Error('sorry, too many clients already'), { code: '53300' })],
    ['a database that does not exist (3D000)', Object.assign(new Error('database "tessera" does not exist'), { code: '3D000' })],
    ['a terminated connection', new Error('Connection terminated unexpectedly')],
    ['a pool connect timeout', new Error('timeout exceeded when trying to connect')],
    ['a statement past its client-side deadline', new Error('Query read timeout')],
    ['a statement behind it on the dropped connection', new Error('Client has encountered a connection error and is not queryable')],
    ['a statement on a connection already closed', new Error('Client was closed and is not queryable')],
    ['a statement cancelled by statement_timeout (57014)', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })],
    ['a session ended by idle_in_transaction_session_timeout (25P03)', Object.assign(new Error('terminating connection due to idle-in-transaction timeout'), { code: '25P03' })]
  ]
  for (const [label, error] of unavailable) t.equal(isDatabaseUnavailable(error), true, label)

  const other: Array<[string, unknown]> = [
    ['a plain error', new Error('secret detail')],
    ['a unique violation (23505)', Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' })],
    ['a syntax error (42601)', Object.assign(new Error('syntax error at or near "selec"'), { code: '42601' })],
    ['a validation error', Object.assign(new Error('body/name must be string'), { code: 'FST_ERR_VALIDATION', statusCode: 400 })],
    ['a string', 'Connection refused'],
    ['an empty object', {}]
  ]
  for (const [label, error] of other) t.equal(isDatabaseUnavailable(error), false, label)
})

t.test('a 5xx is logged but its message never reaches the client', async (t) => {
  const { server, logs } = await buildErrorServer(t)
  const res = await server.inject({ method: 'GET', url: '/crash' })
  t.equal(res.statusCode, 500)
  t.equal(res.headers['content-type'], PROBLEM_JSON)
  t.strictSame(res.json(), { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: GENERIC_DETAIL, code: 'TESSERA_INTERNAL', instance: res.json().instance })
  t.notMatch(res.body, 'secret detail')
  t.ok(logs.some((line) => line.includes('secret detail') && line.includes('"level":50')), 'the error is logged for the operator')

  const gateway = await server.inject({ method: 'GET', url: '/bad-gateway' })
  t.equal(gateway.statusCode, 502)
  t.match(gateway.json(), { status: 502, title: 'Bad Gateway', detail: GENERIC_DETAIL, code: 'TESSERA_INTERNAL' })
  t.notMatch(gateway.body, 'secret detail')
})

t.test('a 4xx says what is wrong', async (t) => {
  const { server } = await buildErrorServer(t)
  const res = await server.inject({ method: 'GET', url: '/conflict' })
  t.equal(res.statusCode, 409)
  t.equal(res.headers['content-type'], PROBLEM_JSON)
  t.strictSame(res.json(), { type: 'about:blank', title: 'Conflict', status: 409, detail: 'a live token named "ci" already exists for alice', code: 'TESSERA_TOKEN_NAME_TAKEN', instance: res.json().instance })
})

t.test('a database connection failure is a 503 TESSERA_DATABASE_UNAVAILABLE without details', async (t) => {
  const { server, logs } = await buildErrorServer(t)
  const res = await server.inject({ method: 'GET', url: '/database' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['content-type'], PROBLEM_JSON)
  t.match(res.json(), { title: 'Service Unavailable', status: 503, detail: DATABASE_DETAIL, code: 'TESSERA_DATABASE_UNAVAILABLE' })
  t.notMatch(res.body, '127.0.0.1')
  t.ok(logs.some((line) => line.includes('ECONNREFUSED') && line.includes('database unavailable')), 'the cause is logged')
})

t.test('OAuth routes answer RFC 6749 errors, with the same discretion', async (t) => {
  const { server } = await buildErrorServer(t)
  const crash = await server.inject({ method: 'GET', url: '/oauth/crash' })
  t.equal(crash.statusCode, 500)
  t.equal(crash.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(crash.headers['cache-control'], 'no-store')
  t.strictSame(crash.json(), { error: 'server_error', error_description: GENERIC_DETAIL })

  const database = await server.inject({ method: 'GET', url: '/oauth/database' })
  t.equal(database.statusCode, 503)
  t.strictSame(database.json(), { error: 'temporarily_unavailable', error_description: DATABASE_DETAIL })
})

t.test('the request id in `instance` comes from a sane X-Request-Id, else is generated', async (t) => {
  const { server } = await buildErrorServer(t)
  const echoed = await server.inject({ method: 'GET', url: '/conflict', headers: { 'x-request-id': 'gw-01HX.trace:42_a' } })
  t.equal(echoed.json().instance, 'gw-01HX.trace:42_a')

  for (const [label, value] of [['spaces', 'a b'], ['a newline', 'abc\ndef'], ['markup', '<script>'], ['129 characters', 'a'.repeat(129)], ['an empty value', '']]) {
    const res = await server.inject({ method: 'GET', url: '/conflict', headers: { 'x-request-id': value } })
    t.match(res.json().instance, UUID, `${label} is replaced`)
  }
  const longest = await server.inject({ method: 'GET', url: '/conflict', headers: { 'x-request-id': 'a'.repeat(128) } })
  t.equal(longest.json().instance, 'a'.repeat(128), '128 characters are accepted')
  const none = await server.inject({ method: 'GET', url: '/conflict' })
  t.match(none.json().instance, UUID)
  const other = await server.inject({ method: 'GET', url: '/conflict' })
  t.not(other.json().instance, none.json().instance, 'each request gets its own id')
})

t.test('unknown routes are rate-limited 404 problems', async (t) => {
  const { server } = await buildErrorServer(t)
  const res = await server.inject({ method: 'GET', url: '/nope?token=secret', headers: { 'x-request-id': 'req-404' } })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['content-type'], PROBLEM_JSON)
  t.strictSame(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no route GET /nope', code: 'TESSERA_ROUTE_NOT_FOUND', instance: 'req-404' })
  for (let i = 2; i <= 60; i++) {
    const again = await server.inject({ method: 'GET', url: `/nope/${i}` })
    if (again.statusCode !== 404) t.fail(`request ${i} answered ${again.statusCode}`)
  }
  const limited = await server.inject({ method: 'GET', url: '/nope/61' })
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['content-type'], PROBLEM_JSON)
  t.match(limited.json(), { status: 429, code: 'TESSERA_RATE_LIMITED' })
  t.match(limited.headers['retry-after'], /^[1-9][0-9]*$/)
})

t.test('in the whole application', async (t) => {
  const db = await createTestDatabase()
  const { app } = await buildWith(t, {}, { db })
  await seedUser(app, 'alice')

  t.test('an unknown route is a 404 problem carrying the request id', async (t) => {
    const res = await app.inject({ method: 'DELETE', url: '/api/v1/nothing-here', headers: { 'x-request-id': 'trace-abc.123' } })
    t.equal(res.statusCode, 404)
    t.equal(res.headers['content-type'], PROBLEM_JSON)
    t.strictSame(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no route DELETE /api/v1/nothing-here', code: 'TESSERA_ROUTE_NOT_FOUND', instance: 'trace-abc.123' })
    t.equal(res.headers['x-request-id'], 'trace-abc.123', 'echoed on the answer')
    const generated = await app.inject({ method: 'GET', url: '/api/v2' })
    t.match(generated.json(), { code: 'TESSERA_ROUTE_NOT_FOUND', instance: UUID })
    t.equal(generated.headers['x-request-id'], generated.json().instance, 'the generated id is echoed too')
  })

  t.test('with the database gone, routes answer 503 instead of failing', async (t) => {
    await db.close()
    const created = await app.inject({
      method: 'POST',
      url: '/api/v1/users/alice/tokens',
      headers: { authorization: basic('alice', 'correct horse battery') },
      payload: { name: 'ci', scopes: ['read:tokens'] }
    })
    t.equal(created.statusCode, 503)
    t.equal(created.headers['content-type'], PROBLEM_JSON)
    t.match(created.json(), { status: 503, code: 'TESSERA_DATABASE_UNAVAILABLE', detail: DATABASE_DETAIL })

    const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(generateToken('tsr')) } })
    t.equal(info.statusCode, 503, 'a token that is not cached is never reported valid')
    t.strictSame(info.json(), { error: 'temporarily_unavailable', error_description: DATABASE_DETAIL })
  })
})
