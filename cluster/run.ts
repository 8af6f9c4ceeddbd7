/**
 * `npm run cluster-test`: Tessera as a fleet, on real parts, under faults.
 *
 * Three Tessera processes (the built server) share one PostgreSQL database and one Redis, behind
 * a real nginx running deploy/nginx.conf, under a steady load from autocannon for the whole run.
 * Each replica reaches PostgreSQL through a TCP proxy of its own, so that one replica, or all of
 * them, can lose the database. The phases, in order, each asserting what clients see:
 *
 *  1. revocation, rotation and suspension through one replica are refused by every replica
 *     within 1 s (p50/p99 over 120 changes), while one replica's listener is killed by
 *     `pg_terminate_backend` and reconnects;
 *  2. SIGTERM to a replica under load: no failed client request, `last_used` flushed, exit 0;
 *  3. Redis stopped (SIGKILL) and started again: the limits go local and come back, readiness
 *     and clients unaffected;
 *  4. a brute force spread over the three replicas is stopped at the configured limit;
 *  5. one replica cut off from the database leaves readiness, clients see nothing;
 *  6. the database unreachable for every replica: all stay ready (degraded), cached tokens
 *     answer, misses get a fast 503 with Retry-After, and everything recovers by itself;
 *  7. nothing lost: every acknowledged change is in the database and refused everywhere.
 *
 * Prints one line per check and `N passed, N failed`; exits 1 if anything failed. Options:
 * `--json FILE` writes the checks and figures; `--echo` shows the replicas' output.
 * PostgreSQL: CLUSTER_POSTGRES_URL, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test
 * (a server: the embedded database admits one process, so it cannot hold a fleet).
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, promisify } from 'node:util'
import pg from 'pg'
import { freePort, killAll } from '../bench/processes.js'
import { TESSERA_CLI } from '../bench/tessera.js'
import { difference, describe, failures, Load } from './load.js'
import { createDatabase, Nginx, proxyFor, RedisServer, Replica, startApplication } from './parts.js'

const { values: options } = parseArgs({ options: { json: { type: 'string' }, echo: { type: 'boolean', default: false } } })
const SERVER_URL = process.env.CLUSTER_POSTGRES_URL ?? (process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? process.env.DATABASE_URL : 'postgres://postgres@127.0.0.1:5432/test')

/** What the issue asks of the fleet: a change refused everywhere within this. */
const PROPAGATION_MS = 1000
const RATE_LIMIT_PASSWORD_PER_USER = 10
const RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT = 20
const DATABASE_TIMEOUT_MS = 2000

// ---------------------------------------------------------------------------------------------
// Reporting

interface Check { name: string, ok: boolean, detail: string }
const checks: Check[] = []
const figures: Record<string, unknown> = {}

function check (name: string, ok: boolean, detail = ''): boolean {
  checks.push({ name, ok, detail })
  process.stdout.write(`${ok ? 'ok' : 'not ok'} ${checks.length} - ${name}${detail === '' ? '' : ` (${detail})`}\n`)
  return ok
}

/** The phase running now (its number), for what the writer saw. */
let phase = 'setup'
function section (title: string): void {
  phase = title.split('.')[0]!
  process.stdout.write(`\n# ${title}\n`)
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function summarise (values: number[]): { count: number, p50: number, p99: number, max: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (n: number): number => Math.round(n * 10) / 10
  return { count: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? Number.NaN) }
}

// ---------------------------------------------------------------------------------------------
// HTTP: every request on a connection of its own, so a replica that restarts leaves no stale one.

const agent = new http.Agent({ keepAlive: false })

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string, json: () => any }

async function call (origin: string, method: string, path: string, options: { headers?: Record<string, string>, body?: string, timeoutMs?: number } = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const request = http.request(`${origin}${path}`, { method, agent, headers: options.headers, timeout: options.timeoutMs ?? 10_000 }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, json: () => JSON.parse(body) })
      })
      response.on('error', reject)
    })
    request.on('timeout', () => { request.destroy(new Error(`${method} ${path}: no answer in ${options.timeoutMs ?? 10_000} ms`)) })
    request.on('error', reject)
    request.end(options.body)
  })
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${encodeURIComponent(user)}:${encodeURIComponent(password)}`).toString('base64')}`

async function api (origin: string, method: string, path: string, token: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  return await call(origin, method, path, { headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
}

async function expectStatus (answer: Promise<Answer>, status: number, what: string): Promise<Answer> {
  const res = await answer
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status}: ${res.body}`)
  return res
}

// ---------------------------------------------------------------------------------------------
// The fleet

const work = await mkdtemp(join(tmpdir(), 'tessera-cluster-'))
const cleanups: Array<() => Promise<void>> = []
async function cleanUp (): Promise<void> {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  cleanups.length = 0
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { cleanUp().finally(() => process.exit(130)).catch(() => {}) })
}
cleanups.push(async () => { await rm(work, { recursive: true, force: true }) })

const started = performance.now()
let load: Load | null = null

try {
  section('setup: one PostgreSQL database, one Redis, three replicas, nginx, steady load')
  const database = await createDatabase(SERVER_URL)
  cleanups.push(database.drop)
  const sql = new pg.Pool({ connectionString: database.url, max: 2 })
  cleanups.push(async () => { await sql.end() })
  const databaseName = new URL(database.url).pathname.slice(1)

  const redis = await RedisServer.start()
  cleanups.push(async () => { await redis.close() })

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    TOKEN_HMAC_KEY: randomBytes(32).toString('hex'),
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: 'cluster:',
    MIGRATE_ON_START: 'false',
    TRUST_PROXY: '127.0.0.1',
    BOOTSTRAP_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
    // Only the shutdown flush writes last_used in this run: what phase 2 checks.
    LAST_USED_FLUSH_INTERVAL: '3600',
    ARGON2_MEMORY_COST: '1024',
    ARGON2_TIME_COST: '1',
    DATABASE_TIMEOUT_MS: String(DATABASE_TIMEOUT_MS),
    RATE_LIMIT_PASSWORD_PER_USER: String(RATE_LIMIT_PASSWORD_PER_USER),
    RATE_LIMIT_PASSWORD_PER_IP: '100000',
    RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT: String(RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT),
    RATE_LIMIT_CLIENT_FAILURES_PER_IP: '100000',
    SHUTDOWN_TIMEOUT: '10'
  }

  // The migration Job, then provisioning, with the CLI against the database directly.
  const run = promisify(execFile)
  const cli = async (args: string[], input?: string): Promise<string> => {
    const child = run(process.execPath, [TESSERA_CLI, ...args], { env: { ...env, DATABASE_URL: database.url }, cwd: work })
    if (input !== undefined) { child.child.stdin?.end(input) }
    try {
      return (await child).stdout
    } catch (error) {
      throw new Error(`tessera ${args.join(' ')} failed: ${(error as Error & { stderr?: string }).stderr ?? (error as Error).message}`)
    }
  }
  const migrated = await cli(['migrate'])
  await cli(['ensure-internal-app'])
  await cli(['user', 'create', '--username', 'operator', '--admin'])
  const admin = (await cli(['token', 'generate', '--username', 'operator', '--name', 'cluster-test', '--scopes', 'admin', '--raw'])).trim()
  const application = async (name: string): Promise<{ id: string, secret: string }> => {
    const created = await cli(['application', 'create', '--name', name, '--scopes', 'introspect'])
    const id = /^client_id:\s+(\S+)/m.exec(created)?.[1]
    const secret = /^client_secret:\s+(\S+)/m.exec(created)?.[1]
    if (id === undefined || secret === undefined) throw new Error(`no client credentials in:\n${created}`)
    return { id, secret }
  }
  const introspector = await application('load')
  const target = await application('brute-force-target')
  const introspectorAuth = basic(introspector.id, introspector.secret)
  check('migrations applied by a separate job (tessera migrate), the replicas start with MIGRATE_ON_START=false', migrated.length > 0, migrated.trim().split('\n').at(-1) ?? '')

  const replicas: Replica[] = []
  for (const name of ['r1', 'r2', 'r3']) {
    const proxy = await proxyFor(database.url)
    cleanups.push(async () => { await proxy.close() })
    replicas.push(new Replica({ name, port: await freePort(), proxy, databaseUrl: database.url, env, cwd: work }))
  }
  cleanups.push(async () => { await Promise.all(replicas.map(async (replica) => { await replica.stop() })) })
  const [r1, r2, r3] = replicas as [Replica, Replica, Replica]
  await r1.start()
  await Promise.all([r2.start(), r3.start()])
  const app = await startApplication()
  cleanups.push(app.close)
  const nginx = await Nginx.start(replicas, app.port)
  cleanups.push(async () => { await nginx.close() })
  check('three replicas ready, nginx in front', true, replicas.map((replica) => `${replica.name} ${replica.origin}`).join(', '))

  // People and tokens, through the admin API of r1.
  const createUser = async (username: string, password?: string): Promise<void> => {
    await expectStatus(api(r1.origin, 'POST', '/api/v1/admin/users', admin, { username, ...(password === undefined ? {} : { password }) }), 201, `create ${username}`)
  }
  /** Every token the run created and was told of (setup, rotations, the writer below). */
  const created: string[] = []
  const createToken = async (username: string, name: string, scopes: string[]): Promise<{ id: string, token: string }> => {
    const res = await expectStatus(api(r1.origin, 'POST', `/api/v1/admin/users/${username}/tokens`, admin, { name, scopes }), 201, `token ${name} for ${username}`)
    const body = res.json()
    created.push(body.id)
    return { id: body.id, token: body.token }
  }
  const tokensFor = async (username: string, count: number, scopes = ['read:tokens']): Promise<Array<{ id: string, token: string }>> => {
    await createUser(username)
    const tokens = []
    for (let n = 0; n < count; n++) tokens.push(await createToken(username, `${username}-${n}`, scopes))
    return tokens
  }
  const loadTokens = await tokensFor('load', 40)
  const flushTokens = await tokensFor('flush', 20)
  const spareTokens = await tokensFor('spare', 10)
  const revocable = await tokensFor('lag', 100)
  const rotatable = await tokensFor('rot', 10, ['write:tokens'])
  const suspendable: Array<{ username: string, id: string, token: string }> = []
  for (let n = 0; n < 10; n++) {
    const [token] = await tokensFor(`sus${n}`, 1)
    suspendable.push({ username: `sus${n}`, ...token! })
  }
  const victimPassword = randomBytes(12).toString('hex')
  await createUser('victim', victimPassword)
  await createUser('writer')

  /**
   * A provisioning client creating a token through the balancer every 100 ms from phase 2 to the
   * end of phase 6. nginx does not send a POST to a second replica (it might have been applied), so
   * a write that meets a replica shutting down or cut off is refused (503): what is asserted is that
   * every acknowledged write exists with its audit event, and every refused one left nothing.
   */
  const writes = { acknowledged: [] as string[], refused: [] as Array<{ name: string, status: number | string, phase: string }> }
  const writer = { running: false, done: Promise.resolve() }
  function startWriter (): void {
    writer.running = true
    writer.done = (async () => {
      for (let n = 0; writer.running; n++) {
        const name = `write-${n}`
        const res = await api(nginx.balancer, 'POST', '/api/v1/admin/users/writer/tokens', admin, { name, scopes: ['read:tokens'] }).catch((error: Error) => error)
        if (!(res instanceof Error) && res.status === 201) writes.acknowledged.push(res.json().id)
        else writes.refused.push({ name, status: res instanceof Error ? res.message : res.status, phase })
        await sleep(100)
      }
    })()
  }

  load = new Load([
    {
      name: 'introspect via the balancer',
      url: `${nginx.balancer}/oauth/introspect`,
      method: 'POST',
      rate: 150,
      request: (token) => ({ headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` })
    },
    {
      name: 'application behind the auth_request gateway',
      url: `${nginx.gateway}/`,
      method: 'GET',
      rate: 150,
      request: (token) => ({ headers: { authorization: `Bearer ${token}` } })
    }
  ], loadTokens.map((token) => token.token), { connections: 8 })
  const steadyFrom = load.snapshot()
  await sleep(2000)
  const steady = difference(load.snapshot(), steadyFrom)
  check('steady load through nginx: every request answered 2xx', steady.requests > 0 && failures(steady) === 0, describe(steady))

  // -------------------------------------------------------------------------------------------
  section('1. revocation, rotation and suspension through one replica, refused by every replica')

  async function isActive (replica: Replica, token: string): Promise<boolean> {
    const res = await call(replica.origin, 'POST', '/oauth/introspect', {
      headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${token}`
    })
    if (res.status !== 200) throw new Error(`introspection on ${replica.name} answered ${res.status}: ${res.body}`)
    return res.json().active === true
  }

  /** Milliseconds after `since` until `replica` refuses the token (polling every 5 ms), or Infinity after 5 s. */
  async function refusedAfter (replica: Replica, token: string, since: number): Promise<number> {
    while (performance.now() - since < 5000) {
      if (!await isActive(replica, token)) return performance.now() - since
      await sleep(5)
    }
    return Number.POSITIVE_INFINITY
  }

  const lags: Record<'revocation' | 'rotation' | 'suspension', number[]> = { revocation: [], rotation: [], suspension: [] }
  const lateChanges: string[] = []
  /** Lags of the changes made while r3's listener was down or reconnecting. */
  const whileReconnecting: number[] = []
  let reconnecting = false
  let staleOnOrigin = 0

  /**
   * Every replica answers the token as active (so it is cached everywhere); `change` runs on
   * `via`, which must refuse the token on its very next request; the others are polled until
   * they refuse it. The lag is the slowest replica's, from the change's answer.
   */
  async function measure (kind: keyof typeof lags, via: Replica, token: string, change: () => Promise<void>): Promise<void> {
    const duringReconnection = reconnecting
    for (const replica of replicas) {
      if (!await isActive(replica, token)) throw new Error(`${kind}: ${replica.name} did not answer the token as active before the change`)
    }
    await change()
    const since = performance.now()
    if (await isActive(via, token)) staleOnOrigin++
    const others = replicas.filter((replica) => replica !== via)
    const lag = Math.max(...await Promise.all(others.map(async (replica) => await refusedAfter(replica, token, since))))
    lags[kind].push(lag)
    if (duringReconnection || reconnecting) whileReconnecting.push(lag)
    if (lag > PROPAGATION_MS) lateChanges.push(`${kind} via ${via.name}: ${Math.round(lag)} ms`)
  }

  const phase1From = load.snapshot()
  /** Listeners killed (backends terminated) and how long each replica took to listen again. */
  const listenerKills: Array<{ replica: string, terminated: number, backMs: number }> = []

  /**
   * Terminates `replica`'s LISTEN connection (found by the proxy's port, as PostgreSQL sees it)
   * and, without waiting, times its return: the changes go on meanwhile.
   */
  async function killListener (replica: Replica): Promise<{ back: Promise<void> }> {
    const killed = await sql.query('select pg_terminate_backend(pid) as done from pg_stat_activity where datname = $1 and application_name = $2 and client_port = any($3::int[])',
      [databaseName, 'tessera-listener', replica.proxy.upstreamPorts])
    const since = performance.now()
    const record = { replica: replica.name, terminated: killed.rows.filter((row: { done: boolean }) => row.done).length, backMs: Number.POSITIVE_INFINITY }
    listenerKills.push(record)
    reconnecting = true
    const invalidation = async (): Promise<string | undefined> => (await call(replica.origin, 'GET', '/readyz').catch(() => null))?.json().checks?.invalidation
    const back = (async () => {
      // It notices at once (the connection closes); then it reconnects after 100 ms.
      while (await invalidation() === 'listening' && performance.now() - since < 1000) await sleep(5)
      while (performance.now() - since < 10_000) {
        if (await invalidation() === 'listening') {
          record.backMs = performance.now() - since
          break
        }
        await sleep(10)
      }
      reconnecting = false
    })()
    return { back }
  }

  // Killed on a replica that is told of the change, not the one that makes it.
  const kills = new Map([[25, r3], [50, r1], [75, r2]])
  let reconnected: Promise<void> = Promise.resolve()
  for (const [n, token] of revocable.entries()) {
    const via = replicas[n % 3]!
    const victim = kills.get(n)
    if (victim !== undefined) {
      await reconnected
      reconnected = (await killListener(victim)).back
    }
    await measure('revocation', via, token.token, async () => {
      await expectStatus(api(via.origin, 'DELETE', `/api/v1/admin/users/lag/tokens/${token.id}`, admin), 204, 'revoke')
    })
  }
  await reconnected
  const successors: string[] = []
  for (const [n, token] of rotatable.entries()) {
    const via = replicas[n % 3]!
    await measure('rotation', via, token.token, async () => {
      const res = await expectStatus(api(via.origin, 'POST', `/api/v1/tokens/${token.id}/rotate`, token.token), 201, 'rotate')
      successors.push(res.json().id)
    })
  }
  for (const [n, user] of suspendable.entries()) {
    const via = replicas[n % 3]!
    await measure('suspension', via, user.token, async () => {
      await expectStatus(api(via.origin, 'PATCH', `/api/v1/admin/users/${user.username}`, admin, { suspended: true }), 200, 'suspend')
    })
  }
  const phase1 = difference(load.snapshot(), phase1From)
  const all = [...lags.revocation, ...lags.rotation, ...lags.suspension]
  figures.propagation = { all: summarise(all), revocation: summarise(lags.revocation), rotation: summarise(lags.rotation), suspension: summarise(lags.suspension), whileReconnecting: summarise(whileReconnecting) }
  figures.listenerKills = listenerKills.map((kill) => ({ ...kill, backMs: Math.round(kill.backMs) }))
  check(`every change refused by the other replicas within ${PROPAGATION_MS} ms`, lateChanges.length === 0,
    `${all.length} changes (100 revocations, 10 rotations, 10 suspensions); lag p50 ${summarise(all).p50} ms, p99 ${summarise(all).p99} ms, max ${summarise(all).max} ms${lateChanges.length > 0 ? `; late: ${lateChanges.join(', ')}` : ''}`)
  check('the replica that made a change refuses the token on its very next request', staleOnOrigin === 0, `${staleOnOrigin} answered active`)
  check('a listener killed by pg_terminate_backend three times (r3, r1, r2) mid-way, and back each time', listenerKills.length === 3 && listenerKills.every((kill) => kill.terminated === 1 && Number.isFinite(kill.backMs)),
    `${listenerKills.map((kill) => `${kill.replica}: ${kill.terminated} backend terminated, listening again after ${Math.round(kill.backMs)} ms`).join('; ')}; ${whileReconnecting.length} change(s) meanwhile, the slowest refused everywhere after ${summarise(whileReconnecting).max} ms`)
  check('no client request failed meanwhile', failures(phase1) === 0, describe(phase1))

  // -------------------------------------------------------------------------------------------
  section('2. SIGTERM to a replica under load')
  startWriter()
  for (const token of flushTokens) await expectStatus(call(r2.origin, 'GET', '/oauth/token/info', { headers: { authorization: `Bearer ${token.token}` } }), 200, 'token/info on r2')
  const lastUsed = async (): Promise<number> => {
    const res = await sql.query('select count(*)::int as n from access_tokens where id = any($1::uuid[]) and last_used_at is not null', [flushTokens.map((token) => token.id)])
    return res.rows[0].n as number
  }
  const usedBefore = await lastUsed()
  const phase2From = load.snapshot()
  const stopped = await r2.terminate()
  const usedAfter = await lastUsed()
  await sleep(1000)
  await r2.start()
  await sleep(1000)
  const phase2 = difference(load.snapshot(), phase2From)
  figures.shutdown = { exitCode: stopped.code, ms: Math.round(stopped.ms), load: phase2 }
  check('the replica exits 0 within SHUTDOWN_TIMEOUT', stopped.code === 0 && stopped.ms < 10_000, `exit ${stopped.code} after ${Math.round(stopped.ms)} ms`)
  check('last_used of the tokens it served, buffered until then, flushed on the way out', usedBefore === 0 && usedAfter === flushTokens.length,
    `${usedBefore} of ${flushTokens.length} written before SIGTERM, ${usedAfter} after`)
  check('zero failed client requests through nginx, across the shutdown and the restart', phase2.requests > 0 && failures(phase2) === 0, describe(phase2))

  // -------------------------------------------------------------------------------------------
  section('3. Redis stopped and started under load')
  async function rateLimits (replica: Replica): Promise<{ status: number, rateLimits: string }> {
    const res = await call(replica.origin, 'GET', '/readyz')
    return { status: res.status, rateLimits: res.json().checks?.rate_limits }
  }
  async function redisUp (replica: Replica): Promise<number> {
    const res = await call(replica.origin, 'GET', '/metrics')
    const line = /^tessera_redis_up (\d)/m.exec(res.body)
    return line === null ? Number.NaN : Number(line[1])
  }
  /** Milliseconds until every replica reports `state`, each /readyz answer's status recorded. */
  async function untilRateLimits (state: string, statuses: Set<number>, timeoutMs = 10_000): Promise<number> {
    const since = performance.now()
    while (performance.now() - since < timeoutMs) {
      const seen = await Promise.all(replicas.map(rateLimits))
      for (const answer of seen) statuses.add(answer.status)
      if (seen.every((answer) => answer.rateLimits === state)) return performance.now() - since
      await sleep(20)
    }
    return Number.POSITIVE_INFINITY
  }
  const sharedAtFirst = (await Promise.all(replicas.map(rateLimits))).every((answer) => answer.rateLimits === 'shared')
  const phase3From = load.snapshot()
  const readyStatuses = new Set<number>()
  await redis.stop()
  // A request that counts in Redis notices at once; an idle replica at its next budget sync.
  await call(r1.origin, 'POST', '/api/v1/users/nobody/tokens', { headers: { authorization: basic('nobody', 'not a password') }, body: '{}' }).catch(() => null)
  const localAfter = await untilRateLimits('local', readyStatuses)
  const upWhileDown = await Promise.all(replicas.map(redisUp))
  await sleep(1000)
  await redis.start()
  const sharedAfter = await untilRateLimits('shared', readyStatuses)
  const upAfter = await Promise.all(replicas.map(redisUp))
  const phase3 = difference(load.snapshot(), phase3From)
  figures.redis = { localAfterMs: Math.round(localAfter), sharedAfterMs: Math.round(sharedAfter), load: phase3 }
  check('every replica counts locally once Redis is gone, tessera_redis_up 0', sharedAtFirst && Number.isFinite(localAfter) && upWhileDown.every((up) => up === 0),
    `after ${Math.round(localAfter)} ms; tessera_redis_up ${upWhileDown.join('/')}`)
  check('and shares the limits again by itself once Redis is back, tessera_redis_up 1', Number.isFinite(sharedAfter) && upAfter.every((up) => up === 1),
    `after ${Math.round(sharedAfter)} ms; tessera_redis_up ${upAfter.join('/')}`)
  check('readiness unaffected: /readyz 200 on every replica throughout', readyStatuses.size === 1 && readyStatuses.has(200), [...readyStatuses].join(', '))
  check('no client request failed meanwhile', phase3.requests > 0 && failures(phase3) === 0, describe(phase3))

  // -------------------------------------------------------------------------------------------
  section('4. a brute force spread over the three replicas')
  // Limits count in fixed windows on the clock: start with enough of this one left.
  const leftInWindow = 60_000 - (Date.now() % 60_000)
  if (leftInWindow < 15_000) await sleep(leftInWindow + 200)
  const passwordAnswers: Record<number, number> = {}
  for (let n = 0; n < 30; n++) {
    const replica = replicas[n % 3]!
    // Basic authentication and the web sign-in spend one budget per user.
    const res = n % 2 === 0
      ? await call(replica.origin, 'POST', '/api/v1/users/victim/tokens', { headers: { authorization: basic('victim', `guess ${n}`), 'content-type': 'application/json' }, body: JSON.stringify({ name: `guess-${n}`, scopes: ['read:tokens'] }) })
      : await call(replica.origin, 'POST', '/api/v1/session', { headers: { 'content-type': 'application/json', origin: replica.origin }, body: JSON.stringify({ username: 'victim', password: `guess ${n}` }) })
    passwordAnswers[res.status] = (passwordAnswers[res.status] ?? 0) + 1
  }
  figures.bruteForcePassword = passwordAnswers
  check(`30 password guesses for one user over 3 replicas (Basic and web sign-in): ${RATE_LIMIT_PASSWORD_PER_USER} tried, the rest 429`,
    passwordAnswers[401] === RATE_LIMIT_PASSWORD_PER_USER && passwordAnswers[429] === 30 - RATE_LIMIT_PASSWORD_PER_USER, JSON.stringify(passwordAnswers))
  const clientAnswers: Record<number, number> = {}
  for (let n = 0; n < 60; n++) {
    const replica = replicas[n % 3]!
    const res = await call(replica.origin, 'POST', '/oauth/introspect', { headers: { authorization: basic(target.id, `${target.secret.slice(0, -4)}${String(n).padStart(4, '0')}`), 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${loadTokens[0]!.token}` })
    clientAnswers[res.status] = (clientAnswers[res.status] ?? 0) + 1
  }
  figures.bruteForceClient = clientAnswers
  check(`60 wrong client secrets for one client_id over 3 replicas: ${RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT} tried, the rest 429`,
    clientAnswers[401] === RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT && clientAnswers[429] === 60 - RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT, JSON.stringify(clientAnswers))
  const rightSecret = await call(r2.origin, 'POST', '/oauth/introspect', { headers: { authorization: basic(target.id, target.secret), 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${loadTokens[0]!.token}` })
  check('the client\'s own secret still works meanwhile', rightSecret.status === 200 && rightSecret.json().active === true, `HTTP ${rightSecret.status}`)

  // -------------------------------------------------------------------------------------------
  section('5. one replica cut off from the database')
  async function readiness (replica: Replica): Promise<{ status: number, body: any }> {
    const res = await call(replica.origin, 'GET', '/readyz', { timeoutMs: 10_000 })
    return { status: res.status, body: res.json() }
  }
  async function until (what: () => Promise<boolean>, timeoutMs: number): Promise<number> {
    const since = performance.now()
    while (performance.now() - since < timeoutMs) {
      if (await what()) return performance.now() - since
      await sleep(50)
    }
    return Number.POSITIVE_INFINITY
  }
  const phase5From = load.snapshot()
  r3.proxy.down()
  const cutOffLeaves = await until(async () => {
    const answer = await readiness(r3)
    return answer.status === 503 && answer.body.checks?.fleet === 'others-reach-database'
  }, 10_000)
  const othersStay = (await Promise.all([r1, r2].map(readiness))).every((answer) => answer.status === 200 && answer.body.status === 'ok')
  const missStarted = performance.now()
  const miss = await call(r3.origin, 'POST', '/oauth/introspect', { headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${spareTokens[0]!.token}` })
  const missMs = performance.now() - missStarted
  const viaBalancer = await call(nginx.balancer, 'POST', '/oauth/introspect', { headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${spareTokens[1]!.token}` })
  await sleep(2000)
  r3.proxy.restore()
  const backIn = await until(async () => (await readiness(r3)).status === 200, 10_000)
  const phase5 = difference(load.snapshot(), phase5From)
  figures.cutOff = { leavesMs: Math.round(cutOffLeaves), missMs: Math.round(missMs), backMs: Math.round(backIn), load: phase5 }
  check('the cut-off replica leaves readiness (503, others-reach-database); the others stay', Number.isFinite(cutOffLeaves) && othersStay, `after ${Math.round(cutOffLeaves)} ms`)
  check('a miss on the cut-off replica: a fast 503 with Retry-After', miss.status === 503 && miss.headers['retry-after'] !== undefined && missMs < DATABASE_TIMEOUT_MS + 500,
    `HTTP ${miss.status} in ${Math.round(missMs)} ms, Retry-After ${miss.headers['retry-after'] ?? 'missing'}`)
  check('through the balancer the same miss is answered (another replica)', viaBalancer.status === 200 && viaBalancer.json().active === true, `HTTP ${viaBalancer.status}`)
  check('back in by itself once the database is reachable again', Number.isFinite(backIn), `after ${Math.round(backIn)} ms`)
  check('no client request failed meanwhile', phase5.requests > 0 && failures(phase5) === 0, describe(phase5))

  // -------------------------------------------------------------------------------------------
  section('6. the database unreachable for every replica')
  const cached = spareTokens[2]!.token
  for (const replica of replicas) await isActive(replica, cached)
  const phase6From = load.snapshot()
  const outageStarted = performance.now()
  for (const replica of replicas) replica.proxy.down()
  const cachedAnswers = await Promise.all(replicas.map(async (replica) => await isActive(replica, cached).catch(() => false)))
  // Long enough for every cached answer of the load to run out (CACHE_DEGRADED_TTL, 5 s): the
  // load then meets misses on every replica.
  const readyDuring = new Set<number>()
  const notReady: string[] = []
  let allDegraded = Number.POSITIVE_INFINITY
  while (performance.now() - outageStarted < 7000) {
    const answers = await Promise.all(replicas.map(readiness))
    for (const [n, answer] of answers.entries()) {
      readyDuring.add(answer.status)
      if (answer.status !== 200 && notReady.length < 3) notReady.push(`${replicas[n]!.name} at ${Math.round(performance.now() - outageStarted)} ms: ${answer.status} ${JSON.stringify(answer.body)}`)
    }
    if (!Number.isFinite(allDegraded) && answers.every((answer) => answer.status === 200 && answer.body.status === 'degraded' && answer.body.checks?.fleet === 'none-reach-database')) {
      allDegraded = performance.now() - outageStarted
    }
    await sleep(100)
  }
  const outageMissStarted = performance.now()
  const outageMiss = await call(nginx.balancer, 'POST', '/oauth/introspect', { headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${spareTokens[3]!.token}` })
  const outageMissMs = performance.now() - outageMissStarted
  const phase6Outage = difference(load.snapshot(), phase6From)
  for (const replica of replicas) replica.proxy.restore()
  const outageMs = performance.now() - outageStarted
  const recovered = await until(async () => (await call(nginx.balancer, 'POST', '/oauth/introspect', { headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${spareTokens[4]!.token}` })).status === 200, 15_000)
  const allReady = await until(async () => (await Promise.all(replicas.map(readiness))).every((answer) => answer.status === 200 && answer.body.status === 'ok'), 15_000)
  const afterFrom = load.snapshot()
  const phase6 = difference(afterFrom, phase6From)
  await sleep(2000)
  const afterOutage = difference(load.snapshot(), afterFrom)
  // nginx closes a client's keep-alive connection after an error it makes itself from a 500 (here
  // auth_request's, turned into the 503): a client that had already sent its next request on it
  // sees a reset. Allowed on the gateway only, and only as a reset; never on the balancer.
  const gatewayResets = phase6Outage.errorsBy['application behind the auth_request gateway: ECONNRESET'] ?? 0
  const onlyFast503 = phase6Outage.errors === gatewayResets && Object.keys(phase6Outage.statuses).every((status) => status === '503')
  figures.outage = { degradedAfterMs: Math.round(allDegraded), outageMs: Math.round(outageMs), missMs: Math.round(outageMissMs), recoveredMs: Math.round(recovered), allReadyMs: Math.round(allReady), readyStatusesSeen: [...readyDuring], load: phase6Outage }
  check('a token cached before the outage still answers active on every replica', cachedAnswers.every(Boolean), cachedAnswers.join('/'))
  check('every replica stays in from the first moment: /readyz 200 degraded, none-reach-database, throughout', Number.isFinite(allDegraded) && readyDuring.size === 1 && readyDuring.has(200),
    `all degraded after ${Math.round(allDegraded)} ms; /readyz statuses seen in ${Math.round(outageMs / 1000)} s: ${[...readyDuring].join(', ')}${notReady.length > 0 ? `; ${notReady.join('; ')}` : ''}`)
  check('a miss through the balancer: a fast 503 with Retry-After', outageMiss.status === 503 && outageMiss.headers['retry-after'] !== undefined && outageMissMs < 2 * DATABASE_TIMEOUT_MS + 500,
    `HTTP ${outageMiss.status} in ${Math.round(outageMissMs)} ms`)
  check('clients saw answers, then a 503 once the cached answers ran out; never a 500, a 502 or a connection error (but a reset after the gateway\'s 503, which closes the connection)', onlyFast503 && phase6Outage.ok > 0, describe(phase6Outage))
  check('recovery by itself within 5 s: misses answered, every replica ready', recovered < 5000 && allReady < 5000, `a miss answered ${Math.round(recovered)} ms after the database returned; all ready after ${Math.round(allReady)} ms`)
  check('no client request failed after recovery', afterOutage.requests > 0 && failures(afterOutage) === 0, describe(afterOutage))

  // -------------------------------------------------------------------------------------------
  section('7. nothing lost')
  writer.running = false
  await writer.done
  const refusedInPhase: Record<string, number> = {}
  for (const write of writes.refused) refusedInPhase[`phase ${write.phase}: ${write.status}`] = (refusedInPhase[`phase ${write.phase}: ${write.status}`] ?? 0) + 1
  figures.writes = { acknowledged: writes.acknowledged.length, refused: refusedInPhase }
  const writtenIds = [...created, ...successors, ...writes.acknowledged]
  const exist = await sql.query('select count(*)::int as n from access_tokens where id = any($1::uuid[])', [writtenIds])
  check('every token created during the run exists (setup, rotations, and the writer\'s acknowledged writes through every fault)', exist.rows[0].n === writtenIds.length,
    `${exist.rows[0].n} of ${writtenIds.length}; the writer: ${writes.acknowledged.length} acknowledged, refused: ${JSON.stringify(refusedInPhase)}`)
  const halfWritten = await sql.query('select count(*)::int as n from access_tokens t join users u on u.id = t.user_id where u.username = $1 and t.name = any($2::text[])', ['writer', writes.refused.map((write) => write.name)])
  check('every refused write left nothing behind', halfWritten.rows[0].n === 0, `${halfWritten.rows[0].n} of ${writes.refused.length} refused writes found in the database`)
  const audited = async (action: string, ids: string[]): Promise<number> =>
    (await sql.query('select count(distinct target_id)::int as n from audit_events where action = $1 and target_id = any($2::text[])', [action, ids])).rows[0].n as number
  const auditCounts = {
    created: await audited('token.created', [...created, ...writes.acknowledged]),
    rotated: await audited('token.rotated', successors),
    revoked: await audited('token.revoked', revocable.map((token) => token.id)),
    suspended: (await sql.query('select count(distinct target)::int as n from audit_events where action = $1 and target = any($2::text[])', ['user.suspended', suspendable.map((user) => user.username)])).rows[0].n as number
  }
  const expectedAudit = { created: created.length + writes.acknowledged.length, rotated: successors.length, revoked: revocable.length, suspended: suspendable.length }
  check('every change has its audit event', JSON.stringify(auditCounts) === JSON.stringify(expectedAudit), `found ${JSON.stringify(auditCounts)}, expected ${JSON.stringify(expectedAudit)}`)
  const revoked = await sql.query('select count(*)::int as n from access_tokens where id = any($1::uuid[]) and revoked_at is not null', [revocable.map((token) => token.id)])
  check('every acknowledged revocation is in the database', revoked.rows[0].n === revocable.length, `${revoked.rows[0].n} of ${revocable.length}`)
  const rotated = await sql.query('select count(*)::int as n from access_tokens where rotated_from = any($1::uuid[])', [rotatable.map((token) => token.id)])
  check('every acknowledged rotation left exactly one successor', rotated.rows[0].n === rotatable.length, `${rotated.rows[0].n} of ${rotatable.length}`)
  const suspended = await sql.query('select count(*)::int as n from users where username = any($1::text[]) and suspended_at is not null', [suspendable.map((user) => user.username)])
  check('every acknowledged suspension is in the database', suspended.rows[0].n === suspendable.length, `${suspended.rows[0].n} of ${suspendable.length}`)
  let stale = 0
  for (const replica of replicas) {
    for (const token of [...revocable, ...rotatable, ...suspendable]) if (await isActive(replica, token.token)) stale++
  }
  check('after every fault, no replica answers any of the 120 changed tokens as active', stale === 0, `${stale} stale answers`)
  // Read before stopping: requests still in flight when autocannon stops are cut off, not failed.
  const total = load.snapshot()
  await load.stop()
  load = null
  figures.load = total
  check('the load generator: every failure it saw is a 503 of the outage of phase 6, before the database returned or within its recovery', failures(total) === failures(phase6), `${describe(total)}; in phase 6: ${failures(phase6)}`)
} catch (error) {
  check('the cluster test ran to the end', false, (error as Error).stack ?? String(error))
} finally {
  if (load !== null) await load.stop().catch(() => null)
  await cleanUp()
}

const passed = checks.filter((item) => item.ok).length
const failed = checks.length - passed
figures.seconds = Math.round((performance.now() - started) / 100) / 10
if (options.json !== undefined) await writeFile(options.json, JSON.stringify({ checks, figures }, null, 2))
process.stdout.write(`\n# figures\n${JSON.stringify(figures, (key, value) => key === 'samples' ? undefined : value, 2)}\n`)
process.stdout.write(`\n${passed} passed, ${failed} failed (${figures.seconds} s)\n`)
process.exit(failed === 0 ? 0 : 1)
