import http, { type IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { Webhook } from 'standardwebhooks'
import t, { type Test } from 'tap'
import { WebhookDispatcher } from '../../src/services/webhooks.js'
import { bearer, buildWith, createTestDatabase, freePort, seedApplication, seedToken, seedUser } from '../helper.js'

/*
 * Events and webhooks (issue 15): every token lifecycle change goes to an outbox in its own
 * transaction and is delivered to the endpoints registered through the admin API, signed as the
 * Standard Webhooks specification says (the `standardwebhooks` package verifies), at least once,
 * with retries. The receiver is a real local HTTP server that can be down, fail, or be slow.
 */

t.setTimeout(240_000)

/** Fast retries and polls: the behaviour under test is the same, in milliseconds. */
const ENV = { WEBHOOK_POLL_INTERVAL_MS: '20', WEBHOOK_RETRY_BASE_MS: '50', WEBHOOK_TIMEOUT_MS: '3000' }

interface Received { headers: IncomingHttpHeaders, body: string }

/** A receiver on a fixed port: `behave` decides each answer; it can be stopped and started again. */
class Receiver {
  received: Received[] = []
  behave: (request: Received) => number | 'hang' = () => 200
  #server: http.Server | null = null
  constructor (readonly port: number) {}

  get url (): string { return `http://127.0.0.1:${this.port}/hooks` }

  async start (): Promise<void> {
    this.#server = http.createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const received = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8') }
        this.received.push(received)
        const answer = this.behave(received)
        if (answer === 'hang') {
          setTimeout(() => { response.end() }, 5000).unref()
          return
        }
        response.statusCode = answer
        response.end()
      })
    })
    await new Promise<void>((resolve) => this.#server!.listen(this.port, '127.0.0.1', resolve))
  }

  async stop (): Promise<void> {
    const server = this.#server
    this.#server = null
    if (server === null) return
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }

  /** The events received of `type` (each attempt counts). */
  of (type: string): Received[] {
    return this.received.filter((item) => JSON.parse(item.body).type === type)
  }
}

async function eventually (what: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await what()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return await what()
}

async function newReceiver (t: Test): Promise<Receiver> {
  const receiver = new Receiver(await freePort())
  await receiver.start()
  t.teardown(async () => { await receiver.stop() })
  return receiver
}

async function setUp (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, admin: string }> {
  const { app } = await buildWith(t, { ...ENV, ...env })
  await seedUser(app, 'root', { admin: true })
  const admin = bearer((await seedToken(app, 'root', { name: 'admin', scopes: ['admin'] })).token)
  return { app, admin }
}

async function register (app: FastifyInstance, admin: string, body: Record<string, unknown>): Promise<{ id: string, secret: string }> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/admin/webhooks', headers: { authorization: admin }, payload: body })
  if (res.statusCode !== 201) throw new Error(`register answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

function verified (secret: string, received: Received): { type: string, timestamp: string, data: Record<string, any> } {
  return new Webhook(secret).verify(received.body, received.headers as Record<string, string>) as { type: string, timestamp: string, data: Record<string, any> }
}

t.test('the admin API: register (secret once), list, read, change, remove; refusals name the problem', async (t) => {
  const { app, admin } = await setUp(t)
  const created = await app.inject({ method: 'POST', url: '/api/v1/admin/webhooks', headers: { authorization: admin }, payload: { url: 'https://hooks.example/tessera', events: ['token.revoked'], description: 'SIEM' } })
  t.equal(created.statusCode, 201)
  const body = created.json()
  t.match(body, { url: 'https://hooks.example/tessera', events: ['token.revoked'], description: 'SIEM', enabled: true })
  t.match(body.secret, /^whsec_[A-Za-z0-9+/]{32}$/)
  t.equal(created.headers['cache-control'], 'no-store')

  const listed = await app.inject({ method: 'GET', url: '/api/v1/admin/webhooks', headers: { authorization: admin } })
  t.strictSame(listed.json().map((item: { id: string }) => item.id), [body.id])
  t.notOk('secret' in listed.json()[0], 'the secret is never shown again')
  t.notMatch(listed.body, body.secret.slice(6))

  const changed = await app.inject({ method: 'PATCH', url: `/api/v1/admin/webhooks/${body.id}`, headers: { authorization: admin }, payload: { enabled: false, events: [] } })
  t.match(changed.json(), { enabled: false, events: [] })
  t.match((await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${body.id}`, headers: { authorization: admin } })).json(), { enabled: false })

  for (const [payload, what] of [
    [{ url: 'ftp://hooks.example/x' }, 'not http(s)'],
    [{ url: 'https://user:pass@hooks.example/x' }, 'credentials in the URL'],
    [{ url: 'hooks.example/x' }, 'not absolute'],
    [{ url: 'https://hooks.example/x', events: ['token.stolen'] }, 'an unknown event type'],
    [{ url: 'https://hooks.example/x', secret: 'mine' }, 'an unknown field']
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/admin/webhooks', headers: { authorization: admin }, payload })
    t.equal(res.statusCode, 400, what)
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/admin/webhooks/0190a000-0000-7000-8000-000000000000', headers: { authorization: admin } })).json().code, 'TESSERA_WEBHOOK_NOT_FOUND')
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/admin/webhooks/${body.id}`, headers: { authorization: admin } })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/admin/webhooks', headers: { authorization: admin } })).json().length, 0)

  const nonAdmin = bearer((await seedToken(app, 'root', { name: 'reader', scopes: ['read:tokens'] })).token)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/admin/webhooks', headers: { authorization: nonAdmin } })).statusCode, 403)
})

t.test('every lifecycle change is delivered, signed as Standard Webhooks says', async (t) => {
  const { app, admin } = await setUp(t)
  const receiver = await newReceiver(t)
  const { secret } = await register(app, admin, { url: receiver.url })

  await seedUser(app, 'alice')
  const issued = await seedToken(app, 'alice', { name: 'ci', scopes: ['write:tokens'] })
  const rotated = await app.inject({ method: 'POST', url: `/api/v1/tokens/${issued.id}/rotate`, headers: { authorization: bearer(issued.token) } })
  t.equal(rotated.statusCode, 201)
  const successor = rotated.json()
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/admin/users/alice/tokens/${successor.id}`, headers: { authorization: admin } })).statusCode, 204)
  t.equal((await app.inject({ method: 'PATCH', url: '/api/v1/admin/users/alice', headers: { authorization: admin }, payload: { suspended: true } })).statusCode, 200)
  const application = await seedApplication(app, ['introspect'])
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/admin/applications/${application.id}/secret`, headers: { authorization: admin } })).statusCode, 200)

  const expected = ['token.created', 'token.rotated', 'token.revoked', 'user.suspended', 'application.secret_rotated']
  t.ok(await eventually(() => expected.every((type) => receiver.of(type).length > 0)), `received ${expected.join(', ')}`)
  for (const received of receiver.received) {
    const message = verified(secret, received)
    t.ok(message.type, `${message.type}: the signature verifies`)
    t.match(received.headers['webhook-id'], /^[0-9a-f-]{36}$/)
    t.equal(received.headers['content-type'], 'application/json')
  }
  t.match(verified(secret, receiver.of('token.created').find((item) => JSON.parse(item.body).data.token.id === issued.id)!), {
    data: { token: { id: issued.id, name: 'ci' }, owner: 'alice', scopes: ['write:tokens'] }
  })
  t.match(verified(secret, receiver.of('token.rotated')[0]!), { data: { token: { id: successor.id }, rotated_from: issued.id } })
  t.match(verified(secret, receiver.of('token.revoked').find((item) => JSON.parse(item.body).data.token.id === successor.id)!), { data: { actor: { label: 'root' }, reason: 'revoked by an administrator' } })
  t.match(verified(secret, receiver.of('user.suspended')[0]!), { data: { user: { name: 'alice' } } })

  const tampered = { ...receiver.received[0]!, body: receiver.received[0]!.body.replace('token', 'tokem') }
  t.throws(() => verified(secret, tampered), 'a changed body does not verify (the control)')
})

t.test('a receiver that answers 500, then 200: retried, and every attempt carries the same webhook-id', async (t) => {
  const { app, admin } = await setUp(t)
  const receiver = await newReceiver(t)
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  let failures = 2
  receiver.behave = () => failures-- > 0 ? 500 : 200
  await seedUser(app, 'bob')
  const issued = await seedToken(app, 'bob', { name: 'flaky' })
  t.ok(await eventually(() => receiver.received.length === 3), 'three attempts')
  const ids = new Set(receiver.received.map((item) => item.headers['webhook-id']))
  t.equal(ids.size, 1, 'one webhook-id for the three attempts: the receiver can drop duplicates')
  for (const item of receiver.received) t.equal(verified(endpoint.secret, item).data.token.id, issued.id)
  const log = await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })
  t.match(log.json(), [{ event_type: 'token.created', status: 'succeeded', attempts: 3, last_status: 200, last_error: null, next_attempt_at: null }])
})

t.test('a receiver down for a while: nothing is lost', async (t) => {
  const { app, admin } = await setUp(t)
  const receiver = new Receiver(await freePort()) // not started: connections are refused
  t.teardown(async () => { await receiver.stop() })
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  await seedUser(app, 'carol')
  const ids: string[] = []
  for (let n = 0; n < 5; n++) ids.push((await seedToken(app, 'carol', { name: `t${n}` })).id)
  t.ok(await eventually(async () => {
    const log = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
    return log.length === 5 && log.every((item: { attempts: number }) => item.attempts >= 2)
  }), 'each delivery tried and failed at least twice while the receiver is down')
  const pending = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries?status=pending`, headers: { authorization: admin } })).json()
  t.equal(pending.length, 5)
  t.match(pending[0].last_error, /ECONNREFUSED|connect/i, 'the delivery log says why')
  await receiver.start()
  t.ok(await eventually(() => new Set(receiver.received.map((item) => JSON.parse(item.body).data.token.id)).size === 5, 15_000), 'all five delivered once it is back')
  t.strictSame(new Set(receiver.received.map((item) => verified(endpoint.secret, item).data.token.id)), new Set(ids))
})

t.test('a slow receiver: the attempt times out and is retried', async (t) => {
  const { app, admin } = await setUp(t, { WEBHOOK_TIMEOUT_MS: '500' })
  const receiver = await newReceiver(t)
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  let slow = 1
  receiver.behave = () => slow-- > 0 ? 'hang' : 200
  await seedUser(app, 'dave')
  await seedToken(app, 'dave', { name: 'slow' })
  t.ok(await eventually(async () => {
    const log = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
    return log[0]?.status === 'succeeded'
  }), 'delivered in the end')
  t.ok(receiver.received.length >= 2, 'the first attempt hung past WEBHOOK_TIMEOUT_MS; a later one was answered')
  const [log] = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
  t.equal(log.attempts, receiver.received.length, 'every attempt is in the log')
  t.equal(new Set(receiver.received.map((item) => item.headers['webhook-id'])).size, 1)
})

t.test('past WEBHOOK_RETRY_PERIOD a delivery is marked failed, with its last error', async (t) => {
  const { app, admin } = await setUp(t, { WEBHOOK_RETRY_PERIOD: '1' })
  const receiver = await newReceiver(t)
  receiver.behave = () => 503
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  await seedUser(app, 'erin')
  await seedToken(app, 'erin', { name: 'doomed' })
  t.ok(await eventually(async () => {
    const log = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries?status=failed`, headers: { authorization: admin } })).json()
    return log.length === 1
  }), 'failed')
  const [failed] = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
  t.match(failed, { status: 'failed', last_status: 503, last_error: 'HTTP 503', next_attempt_at: null })
  t.ok(failed.attempts >= 2)
  const attempts = receiver.received.length
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(receiver.received.length, attempts, 'no attempt after it failed')
})

t.test('an endpoint gets only the event types it asked for; a disabled one gets nothing', async (t) => {
  const { app, admin } = await setUp(t)
  const revocations = await newReceiver(t)
  const disabled = await newReceiver(t)
  await register(app, admin, { url: revocations.url, events: ['token.revoked'] })
  await register(app, admin, { url: disabled.url, enabled: false })
  await seedUser(app, 'frank')
  const issued = await seedToken(app, 'frank', { name: 'x' })
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/admin/users/frank/tokens/${issued.id}`, headers: { authorization: admin } })).statusCode, 204)
  t.ok(await eventually(() => revocations.received.length === 1))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.strictSame(revocations.received.map((item) => JSON.parse(item.body).type), ['token.revoked'])
  t.equal(disabled.received.length, 0)
})

t.test('disabling an endpoint stops its attempts; enabling it again resumes them', async (t) => {
  const { app, admin } = await setUp(t)
  const receiver = await newReceiver(t)
  receiver.behave = () => 500
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  await seedUser(app, 'hank')
  await seedToken(app, 'hank', { name: 'paused' })
  t.ok(await eventually(() => receiver.received.length >= 2), 'attempted and failing')
  t.equal((await app.inject({ method: 'PATCH', url: `/api/v1/admin/webhooks/${endpoint.id}`, headers: { authorization: admin }, payload: { enabled: false } })).statusCode, 200)
  await new Promise((resolve) => setTimeout(resolve, 100)) // an attempt already under way may finish
  const attempts = receiver.received.length
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(receiver.received.length, attempts, 'no attempt while disabled')
  receiver.behave = () => 200
  t.equal((await app.inject({ method: 'PATCH', url: `/api/v1/admin/webhooks/${endpoint.id}`, headers: { authorization: admin }, payload: { enabled: true } })).statusCode, 200)
  t.ok(await eventually(async () => {
    const log = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
    return log[0]?.status === 'succeeded'
  }), 'delivered once enabled again')
})

t.test('EVENT_RETENTION: old events whose deliveries are done are deleted with their log; pending ones are kept', async (t) => {
  const { app, admin } = await setUp(t, { EVENT_RETENTION: '30' })
  const receiver = await newReceiver(t)
  const endpoint = await register(app, admin, { url: receiver.url, events: ['token.created'] })
  await seedUser(app, 'ivy')
  await seedToken(app, 'ivy', { name: 'old' })
  t.ok(await eventually(() => receiver.received.length === 1))
  receiver.behave = () => 500
  await seedToken(app, 'ivy', { name: 'stuck' })
  t.ok(await eventually(() => receiver.received.length >= 2))
  const rows = async (text: string): Promise<Array<Record<string, unknown>>> => await app.orm.em.fork().getConnection().execute(text, [], 'all') as Array<Record<string, unknown>>
  await rows('update events set created_at = now() - interval \'31 days\' returning id')
  const total = (await rows('select count(*)::int as n from events'))[0]!.n as number
  t.equal(await app.services.webhooks.sweep(), total - 1, 'every old event with nothing pending')
  t.strictSame((await rows('select data -> \'token\' ->> \'name\' as name from events')).map((row) => row.name), ['stuck'], 'the event still pending for the endpoint stays')
  const log = (await app.inject({ method: 'GET', url: `/api/v1/admin/webhooks/${endpoint.id}/deliveries`, headers: { authorization: admin } })).json()
  t.match(log, [{ status: 'pending' }], 'the delivered one left the log with its event')
})

// Two dispatchers on one database deliver each event once between them (SKIP LOCKED): on a
// server, two app instances with pools of their own; on the embedded database (one process, one
// connection) a second dispatcher beside the app's own.
t.test('two dispatchers on one database: each event delivered once', async (t) => {
  const server = (process.env.DATABASE_URL ?? '') !== ''
  const db = await createTestDatabase()
  t.teardown(async () => { await db.close() })
  const { app: a } = await buildWith(t, ENV, { db })
  if (server) await buildWith(t, ENV, { db })
  else {
    const second = new WebhookDispatcher({ fork: () => a.orm.em.fork(), sealer: a.services.webhookSecrets, timeoutMs: 3000, retryBaseMs: 50, retryPeriodMs: 86_400_000, intervalMs: 20, log: a.log })
    second.start()
    t.teardown(async () => { await second.stop() })
  }
  await seedUser(a, 'root', { admin: true })
  const admin = bearer((await seedToken(a, 'root', { name: 'admin', scopes: ['admin'] })).token)
  const receiver = await newReceiver(t)
  await register(a, admin, { url: receiver.url, events: ['token.created'] })
  await seedUser(a, 'gina')
  for (let n = 0; n < 40; n++) await seedToken(a, 'gina', { name: `t${n}` })
  t.ok(await eventually(() => receiver.received.length >= 40))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(receiver.received.length, 40, 'forty events, forty deliveries: none twice')
  t.equal(new Set(receiver.received.map((item) => item.headers['webhook-id'])).size, 40)
})
