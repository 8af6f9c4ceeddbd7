import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile, rm } from 'node:fs/promises'
import http, { type IncomingHttpHeaders } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { AccessToken } from '../../../src/entities/access-token.js'
import { expirationHeader } from '../../../src/http/expiration.js'
import { generateToken } from '../../../src/services/token-format.js'
import { bearer, buildWith, freePort, seedToken, seedUser } from '../../helper.js'
import { prepareNginx } from '../../nginx.js'

/**
 * The nginx configuration of docs/gateways.md, run by a real nginx in front of a real Tessera
 * and an upstream that echoes what it received. Only the ports change.
 */

const DOCUMENT = new URL('../../../docs/gateways.md', import.meta.url)

interface Echoed {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

/** Replaces `from` by `to` in `text`, insisting it occurs exactly once (the document must not drift unnoticed). */
function replaceOnce (text: string, from: string, to: string): string {
  const parts = text.split(from)
  if (parts.length !== 2) throw new Error(`expected "${from}" once in the nginx block of docs/gateways.md, found it ${parts.length - 1} times`)
  return parts.join(to)
}

/** The documented nginx block: the first ```nginx fence after the "This block is the configuration" marker. */
async function documentedConfiguration (): Promise<string> {
  const markdown = await readFile(DOCUMENT, 'utf8')
  const match = /<!-- This block is the configuration test\/routes\/gateway\/nginx\.test\.ts runs[^>]*-->\s*```nginx\n([\s\S]*?)\n```/.exec(markdown)
  if (match?.[1] === undefined) throw new Error('docs/gateways.md has no tested nginx block')
  return match[1]
}

// Tessera, on a loopback port.
const { app } = await buildWith(t, { TRUST_PROXY: 'true' })
await app.listen({ host: '127.0.0.1', port: 0 })
const tesseraPort = (app.server.address() as AddressInfo).port

// The application behind nginx: answers with what reached it.
const received: Echoed[] = []
const upstream = http.createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    const echoed = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') }
    received.push(echoed)
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify(echoed))
  })
})
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
const upstreamPort = (upstream.address() as AddressInfo).port
t.teardown(async () => {
  upstream.closeAllConnections()
  await new Promise((resolve) => upstream.close(resolve))
})

// nginx, with its own prefix in a fresh directory: configuration, pid, logs and temp files all inside.
const nginxPort = await freePort()
let site = await documentedConfiguration()
site = replaceOnce(site, 'server 127.0.0.1:3000;', `server 127.0.0.1:${tesseraPort};`)
site = replaceOnce(site, 'server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`)
site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${nginxPort};`)
const { prefix, binary, args } = await prepareNginx(site)
const nginx: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
let nginxStderr = ''
nginx.stderr?.on('data', (chunk: Buffer) => { nginxStderr += chunk.toString('utf8') })
const nginxExited = once(nginx, 'exit')
t.teardown(async () => {
  if (nginx.exitCode === null && nginx.signalCode === null) {
    nginx.kill('SIGQUIT')
    const stopped = await Promise.race([nginxExited.then(() => true), sleep(5000).then(() => false)])
    if (!stopped) {
      nginx.kill('SIGKILL')
      await nginxExited
    }
  }
  await rm(prefix, { recursive: true, force: true })
})

/** Waits until nginx accepts connections; fails with its own words if it exits first. */
async function nginxReady (): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (nginx.exitCode !== null || nginx.signalCode !== null) break
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(nginxPort, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (connected) return
    await sleep(50)
  }
  const log = await readFile(join(prefix, 'error.log'), 'utf8').catch(() => '')
  throw new Error(`nginx did not start (exit ${String(nginx.exitCode ?? nginx.signalCode)}): ${nginxStderr}${log}`)
}
await nginxReady()

const base = `http://127.0.0.1:${nginxPort}`

const owner = await seedUser(app, 'gateway-reader')
const reader = await seedToken(app, 'gateway-reader', { scopes: ['read:repository'], expires_in: 3600 })
const writer = await seedToken(app, 'gateway-reader', { scopes: ['write:repository'], expires_in: 3600 })

async function expirationOf (id: string): Promise<string> {
  const row = await app.orm.em.fork().findOneOrFail(AccessToken, id)
  if (row.expiresAt == null) throw new Error('token has no expiry')
  return expirationHeader(row.expiresAt.getTime())
}

/** What reached the application for one request through nginx (fails if nothing or more than one did). */
async function throughNginx (path: string, init: RequestInit = {}): Promise<{ response: Response, body: string, reached: Echoed[] }> {
  const before = received.length
  const response = await fetch(`${base}${path}`, init)
  const body = await response.text()
  return { response, body, reached: received.slice(before) }
}

t.test('a valid token passes nginx and its identity reaches the application', async (t) => {
  const { response, body, reached } = await throughNginx('/v1/repositories?page=2', { headers: { authorization: bearer(reader.token) } })
  t.equal(response.status, 200)
  t.equal(reached.length, 1)
  const echoed = JSON.parse(body) as Echoed
  t.equal(echoed.method, 'GET')
  t.equal(echoed.url, '/v1/repositories?page=2')
  t.match(echoed.headers, {
    'x-auth-request-user': 'gateway-reader',
    'x-auth-request-subject': owner.id,
    'x-auth-request-scopes': 'read:repository',
    'x-auth-request-client-id': 'internal',
    'x-auth-request-token-id': reader.id,
    'tessera-token-expiration': await expirationOf(reader.id),
    authorization: bearer(reader.token)
  })
  t.equal(response.headers.get('x-auth-request-user'), null, 'the identity goes to the application, not back to the client')
})

t.test('identity headers sent by the client are replaced by Tessera\'s', async (t) => {
  const { response, reached } = await throughNginx('/v1/whoami', {
    headers: { authorization: bearer(reader.token), 'x-auth-request-user': 'mallory', 'x-auth-request-scopes': 'admin', 'x-auth-request-subject': 'someone-else' }
  })
  t.equal(response.status, 200)
  t.equal(reached.length, 1)
  t.equal(reached[0]?.headers['x-auth-request-user'], 'gateway-reader')
  t.equal(reached[0]?.headers['x-auth-request-scopes'], 'read:repository')
  t.equal(reached[0]?.headers['x-auth-request-subject'], owner.id)
})

t.test('a request body goes to the application, never to Tessera', async (t) => {
  const { response, reached } = await throughNginx('/v1/repositories', {
    method: 'POST',
    headers: { authorization: bearer(reader.token), 'content-type': 'application/json' },
    body: '{"name":"tessera"}'
  })
  t.equal(response.status, 200)
  t.equal(reached.length, 1)
  t.equal(reached[0]?.method, 'POST')
  t.equal(reached[0]?.body, '{"name":"tessera"}')
  t.equal(reached[0]?.headers['x-auth-request-token-id'], reader.id)
})

t.test('without a token nginx answers 401 with Tessera\'s challenge, and the application sees nothing', async (t) => {
  const { response, reached } = await throughNginx('/v1/repositories')
  t.equal(response.status, 401)
  t.equal(response.headers.get('www-authenticate'), 'Bearer realm="tessera"')
  t.equal(reached.length, 0)
})

t.test('an invalid token is 401 from nginx with error="invalid_token"', async (t) => {
  const { response, reached } = await throughNginx('/v1/repositories', { headers: { authorization: bearer(generateToken('tsr')) } })
  t.equal(response.status, 401)
  t.equal(response.headers.get('www-authenticate'), 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
  t.equal(reached.length, 0)
})

t.test('a token without the scope a location requires is 403 from nginx', async (t) => {
  const { response, reached } = await throughNginx('/admin/settings', { headers: { authorization: bearer(reader.token) } })
  t.equal(response.status, 403)
  t.equal(response.headers.get('www-authenticate'), null, 'nginx passes a challenge on 401 only')
  t.equal(reached.length, 0)
})

t.test('a token with the required scope passes that location', async (t) => {
  const { response, reached } = await throughNginx('/admin/settings', { headers: { authorization: bearer(writer.token) } })
  t.equal(response.status, 200)
  t.equal(reached.length, 1)
  t.equal(reached[0]?.url, '/admin/settings')
  t.equal(reached[0]?.headers['x-auth-request-scopes'], 'write:repository read:repository')
  t.equal(reached[0]?.headers['x-auth-request-token-id'], writer.id)
})

t.test('Tessera records the address nginx saw, not one the client claims', async (t) => {
  const { token, id } = await seedToken(app, 'gateway-reader', { scopes: ['read:repository'] })
  const { response } = await throughNginx('/v1/repositories', { headers: { authorization: bearer(token), 'x-forwarded-for': '198.51.100.9' } })
  t.equal(response.status, 200)
  await app.usage.flush()
  const row = await app.orm.em.fork().findOneOrFail(AccessToken, id)
  t.equal(row.lastUsedIp, '127.0.0.1')
  t.ok(row.lastUsedAt instanceof Date, 'last_used_at is set')
})
