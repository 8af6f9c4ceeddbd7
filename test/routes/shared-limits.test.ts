import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { basic, build, freePort, seedUser, testRedis } from '../helper.js'

/*
 * Rate limits as a cluster's (issue 14): with REDIS_URL, every replica counts in the same Redis
 * (the one the machine runs, 127.0.0.1:6379), so a password brute force spread over replicas is
 * stopped at the configured limit, not N times it; and Basic authentication and the web sign-in
 * spend one budget per user. A Redis that goes away (here: a redis-server this test starts on its
 * own port and stops) leaves per-process limits, no 5xx and readiness untouched, and the counts
 * are shared again once it is back.
 */

const REDIS = testRedis().url
const PASSWORD = 'correct horse battery'
const LIMIT = 4

function limits (redisUrl: string, prefix: string): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    // Generous: on a loaded machine a 200 ms deadline turns a slow answer into a local count.
    REDIS_TIMEOUT_MS: '1000',
    RATE_LIMIT_PASSWORD_PER_USER: String(LIMIT),
    RATE_LIMIT_PASSWORD_PER_IP: '1000'
  }
}

async function guessBasic (app: FastifyInstance, username: string): Promise<number> {
  const res = await app.inject({
    method: 'POST',
    url: `/api/v1/users/${username}/tokens`,
    headers: { authorization: basic(username, 'wrong password'), 'content-type': 'application/json' },
    payload: { name: 'guess', scopes: ['read:repository'] }
  })
  return res.statusCode
}

async function guessSignIn (app: FastifyInstance, username: string): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password: 'wrong password' } })
  return res.statusCode
}

async function readiness (app: FastifyInstance): Promise<{ status: number, rateLimits: string }> {
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  return { status: res.statusCode, rateLimits: res.json().checks?.rate_limits }
}

t.test('two replicas on one Redis: a brute force spread over both stops at the limit, Basic and sign-in alike', async (t) => {
  const prefix = testRedis().prefix
  const a = await build(t, limits(REDIS, prefix))
  const b = await build(t, limits(REDIS, prefix))
  for (const app of [a, b]) await seedUser(app, 'alice', { password: PASSWORD })
  t.same(await readiness(a), { status: 200, rateLimits: 'shared' })

  // Two guesses by Basic on A, two by the web sign-in on B: the user's budget of four is spent.
  const answers = [await guessBasic(a, 'alice'), await guessBasic(a, 'alice'), await guessSignIn(b, 'alice'), await guessSignIn(b, 'alice')]
  t.same(answers, [401, 401, 401, 401])
  t.equal(await guessBasic(b, 'alice'), 429, 'the fifth guess, on the replica that saw two: refused')
  t.equal(await guessSignIn(a, 'alice'), 429, 'and on the other, by the other way in')
  t.equal(await guessBasic(a, 'bob'), 401, 'another user has a budget of their own')

  const metrics = await a.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /^tessera_redis_up 1$/m)
})

t.test('Redis goes away and comes back: per-process limits meanwhile, no 5xx, readiness untouched, shared again after', async (t) => {
  const port = await freePort()
  let redis = await startRedis(port)
  t.teardown(async () => { await stopRedis(redis) })
  const prefix = testRedis().prefix
  const a = await build(t, limits(`redis://127.0.0.1:${port}`, prefix))
  const b = await build(t, limits(`redis://127.0.0.1:${port}`, prefix))
  for (const app of [a, b]) await seedUser(app, 'carol', { password: PASSWORD })

  t.same([await guessBasic(a, 'carol'), await guessBasic(b, 'carol')], [401, 401], 'two shared guesses')
  await stopRedis(redis)
  await waitFor(async () => (await readiness(a)).rateLimits === 'local' && (await readiness(b)).rateLimits === 'local')
  t.same(await readiness(a), { status: 200, rateLimits: 'local' }, 'still ready')

  // Each process counts from zero: four more per replica, then 429, and never a 5xx.
  const onA = []
  for (let i = 0; i < LIMIT + 1; i++) onA.push(await guessBasic(a, 'carol'))
  t.same(onA, [401, 401, 401, 401, 429], 'A: its own limit')
  t.equal(await guessBasic(b, 'carol'), 401, "B's own count is not A's")
  const metrics = await a.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /^tessera_redis_up 0$/m)
  t.match(metrics.body, /^tessera_rate_limit_local_counts_total [1-9]\d*$/m)

  redis = await startRedis(port)
  await waitFor(async () => (await readiness(a)).rateLimits === 'shared' && (await readiness(b)).rateLimits === 'shared', 10_000)
  // The restarted Redis kept nothing (no persistence): the shared count starts again, on both.
  const shared = []
  for (let i = 0; i < LIMIT; i++) shared.push(await guessBasic(i % 2 === 0 ? a : b, 'carol'))
  t.same(shared, [401, 401, 401, 401])
  t.equal(await guessBasic(b, 'carol'), 429, 'shared again: the fifth guess over both replicas is refused')
})

t.test('a Redis that never answers costs REDIS_TIMEOUT_MS once, not a failure', async (t) => {
  // A listener that accepts and never replies: a Redis gone silent behind a live connection.
  const { createServer } = await import('node:net')
  const sockets = new Set<import('node:net').Socket>()
  const silent = createServer((socket) => { sockets.add(socket) })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { for (const socket of sockets) socket.destroy(); silent.close() })
  const port = (silent.address() as import('node:net').AddressInfo).port
  const app = await build(t, limits(`redis://127.0.0.1:${port}`, testRedis().prefix))
  await seedUser(app, 'dave', { password: PASSWORD })
  const started = Date.now()
  t.equal(await guessBasic(app, 'dave'), 401)
  t.ok(Date.now() - started < 5000, 'answered without waiting on Redis')
  t.same(await readiness(app), { status: 200, rateLimits: 'local' })
})

async function startRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout?.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => { reject(new Error(`redis-server exited (${String(code)}): ${output}`)) })
    child.stdout?.on('data', (chunk: string) => {
      output += chunk
      if (output.includes('Ready to accept connections')) resolve()
    })
  })
  child.removeAllListeners('exit')
  return child
}

async function stopRedis (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await once(child, 'exit')
}

async function waitFor (condition: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
