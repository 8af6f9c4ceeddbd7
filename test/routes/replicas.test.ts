import { spawn } from 'node:child_process'
import { delimiter, dirname } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import { basic, bearer, buildWith, createTestDatabase, form, introspection, seedApplication, seedToken, seedUser, typescriptCommand } from '../helper.js'

/*
 * Cache coherence across replicas (issue 6): a change made on one instance is effective at once
 * on that instance, and on every other instance within one second.
 *
 * Which part runs depends on the database, explicitly:
 *
 * - With DATABASE_URL (a PostgreSQL server), two app instances A and B share ONE fresh database,
 *   as two replicas behind a load balancer would. Every change is made on A; A must reflect it on
 *   its very next request, and B — whose cache holds the old answer — within one second, through
 *   LISTEN/NOTIFY. The CLI (another process) and the listener's reconnection are checked too.
 *
 * - On the embedded database (DATABASE_URL unset) there can be no second replica: PGlite does not
 *   carry NOTIFY across its socket connections, and the data directory admits one process by
 *   design (src/db/lock.ts). The same scenarios then run against the one instance, which must
 *   report `invalidation: local` and reflect every change on its very next request (synchronous
 *   local invalidation) although the old answer was cached.
 */
const SERVER = (process.env.DATABASE_URL ?? '') !== ''

// The CLI scenario boots a child process through tsx; everything else is quick.
t.setTimeout(240_000)

/** How long a change may take to reach the other replica (issue 6). */
const PROPAGATION_MS = 1000
const POLL_MS = 20

/** Long lifetimes: without an invalidation every cached answer would survive the whole test. */
const ENV = { CACHE_TTL: '600', CACHE_NEGATIVE_TTL: '300', CLIENT_CREDENTIAL_CACHE_TTL: '600', CACHE_DEGRADED_TTL: '5' }
const PASSWORD = 'correct horse battery'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

const db = await createTestDatabase()
// Teardowns run last-in first-out: the database is dropped after both instances are closed.
t.teardown(async () => { await db.close() })

const A = (await buildWith(t, ENV, { db })).app
/** The other replica; null on the embedded database (see above). */
const B: FastifyInstance | null = SERVER ? (await buildWith(t, ENV, { db })).app : null
const replicas = B === null ? [A] : [A, B]

const resourceServer = await seedApplication(A, ['introspect'])
const resourceAuth = basic(resourceServer.clientId, resourceServer.clientSecret)
await seedUser(A, 'root', { admin: true })
const admin = await seedToken(A, 'root', { name: 'admin', scopes: ['admin'] })

function name (app: FastifyInstance): string {
  return app === A ? 'A' : 'B'
}

async function isActive (app: FastifyInstance, token: string): Promise<boolean> {
  const res = await introspection(app, token, resourceAuth)
  if (res.statusCode !== 200) throw new Error(`introspection on ${name(app)} answered ${res.statusCode}: ${res.body}`)
  return res.json().active === true
}

/** Whether `app` holds an answer for this token in its cache (a peek that does not load anything). */
function cachedId (app: FastifyInstance, token: string): string | null | undefined {
  const entry = app.services.cache.get(app.services.resolver.cacheKey(token))
  return entry === undefined ? undefined : entry?.id ?? null
}

/** Introspects the token on every replica: active everywhere, and now cached everywhere. */
async function warm (t: Test, token: string, id: string): Promise<void> {
  for (const app of replicas) {
    t.equal(await isActive(app, token), true, `active on ${name(app)}`)
    t.equal(cachedId(app, token), id, `and cached on ${name(app)}`)
  }
}

async function inject (app: FastifyInstance, options: InjectOptions, expected: number): Promise<LightMyRequestResponse> {
  const res = await app.inject(options)
  if (res.statusCode !== expected) throw new Error(`${JSON.stringify(options)} answered ${res.statusCode}: ${res.body}`)
  return res
}

/**
 * After a change answered by A at `since` (performance.now()): A's very next answer must reflect
 * it; B is polled every 20 ms for at most one second and the elapsed time is asserted.
 */
async function reflected (t: Test, what: string, since: number, holds: (app: FastifyInstance) => Promise<boolean>): Promise<void> {
  t.ok(await holds(A), `${what}: on A, the very next request`)
  if (B === null) return
  let elapsed = performance.now() - since
  let held = false
  while (!held && elapsed <= PROPAGATION_MS) {
    held = await holds(B)
    elapsed = performance.now() - since
    if (!held) await sleep(POLL_MS)
  }
  t.ok(held && elapsed <= PROPAGATION_MS, `${what}: on B after ${Math.round(elapsed)} ms (at most ${PROPAGATION_MS})`)
}

/** A client_credentials token issued by A to the application authenticating with `authorization`. */
async function clientCredentialsToken (authorization: string): Promise<string> {
  const body = form({ grant_type: 'client_credentials' })
  const res = await inject(A, { method: 'POST', url: '/oauth/token', payload: body.payload, headers: { ...body.headers, authorization } }, 200)
  return res.json().access_token as string
}

const inactive = (token: string) => async (app: FastifyInstance) => !await isActive(app, token)

let userCount = 0
/** A fresh user with `count` tokens, each introspected (and so cached) on every replica. */
async function userWithTokens (t: Test, count: number, scopes = ['read:tokens']): Promise<{ username: string, tokens: Array<{ token: string, id: string }> }> {
  const username = `user${++userCount}`
  await seedUser(A, username, { password: PASSWORD })
  const tokens = []
  for (let n = 0; n < count; n++) {
    const issued = await seedToken(A, username, { name: `t${n}`, scopes })
    await warm(t, issued.token, issued.id)
    tokens.push(issued)
  }
  return { username, tokens }
}

t.test('readiness reports how changes reach this instance', async (t) => {
  for (const app of replicas) {
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { status: 'ok', checks: { database: 'ok', migrations: 'ok', invalidation: SERVER ? 'listening' : 'local' } },
      `${name(app)}: ${SERVER ? 'listening to the other replicas' : 'local: one process, nothing to listen for'}`)
    t.equal(app.services.listener === null, !SERVER, SERVER ? 'a listener runs' : 'no listener on the embedded database')
  }
})

t.test('the caches really answer from memory: a change written behind Tessera\'s back is not seen', async (t) => {
  // The control for every test below: without the invalidation, the old answer would stay.
  const { tokens: [victim] } = await userWithTokens(t, 1)
  await A.orm.em.getConnection().execute('update access_tokens set revoked_at = now() where id = ?', [victim!.id], 'run')
  for (const app of replicas) t.equal(await isActive(app, victim!.token), true, `${name(app)} still answers active from its cache`)
})

t.test('POST /oauth/revoke (the holder revokes the token)', async (t) => {
  const { tokens: [victim, bystander] } = await userWithTokens(t, 2)
  const body = form({ token: victim!.token })
  await inject(A, { method: 'POST', url: '/oauth/revoke', payload: body.payload, headers: body.headers }, 200)
  await reflected(t, 'the revoked token is inactive', performance.now(), inactive(victim!.token))
  for (const app of replicas) {
    t.equal(cachedId(app, bystander!.token), bystander!.id, `${name(app)}: the owner's other token is still cached`)
    t.equal(await isActive(app, bystander!.token), true, `${name(app)}: and active`)
  }
})

t.test('POST /oauth/revoke by the application that owns the token', async (t) => {
  const owner = await seedApplication(A, ['introspect'])
  const token = await clientCredentialsToken(basic(owner.clientId, owner.clientSecret))
  for (const app of replicas) t.equal(await isActive(app, token), true, `active on ${name(app)}`)
  const body = form({ token })
  await inject(A, { method: 'POST', url: '/oauth/revoke', payload: body.payload, headers: { ...body.headers, authorization: basic(owner.clientId, owner.clientSecret) } }, 200)
  await reflected(t, 'the application\'s revoked token is inactive', performance.now(), inactive(token))
})

t.test('the owner\'s DELETE /api/v1/users/:username/tokens/:token', async (t) => {
  const { username, tokens: [victim] } = await userWithTokens(t, 1)
  await inject(A, { method: 'DELETE', url: `/api/v1/users/${username}/tokens/${victim!.id}`, headers: { authorization: basic(username, PASSWORD) } }, 204)
  await reflected(t, 'the deleted token is inactive', performance.now(), inactive(victim!.token))
})

t.test('POST /api/v1/tokens/:id/invalidate (the owner, with a write:tokens token)', async (t) => {
  const { username, tokens: [victim] } = await userWithTokens(t, 1)
  const manager = await seedToken(A, username, { name: 'manager', scopes: ['write:tokens'] })
  await inject(A, { method: 'POST', url: `/api/v1/tokens/${victim!.id}/invalidate`, headers: { authorization: bearer(manager.token) } }, 200)
  await reflected(t, 'the invalidated token is inactive', performance.now(), inactive(victim!.token))
})

t.test('an administrator\'s DELETE /api/v1/admin/users/:username/tokens/:token', async (t) => {
  const { username, tokens: [victim] } = await userWithTokens(t, 1)
  await inject(A, { method: 'DELETE', url: `/api/v1/admin/users/${username}/tokens/${victim!.id}`, headers: { authorization: bearer(admin.token) } }, 204)
  await reflected(t, 'the token revoked by an administrator is inactive', performance.now(), inactive(victim!.token))
})

t.test('an administrator\'s bulk revocation by value (POST /api/v1/admin/tokens/revoke)', async (t) => {
  const { tokens } = await userWithTokens(t, 3)
  await inject(A, { method: 'POST', url: '/api/v1/admin/tokens/revoke', headers: { authorization: bearer(admin.token) }, payload: { tokens: tokens.map((token) => token.token) } }, 200)
  await reflected(t, 'every token revoked in bulk is inactive', performance.now(), async (app) => {
    for (const token of tokens) if (await isActive(app, token.token)) return false
    return true
  })
})

t.test('suspending the owner (admin PATCH), then lifting the suspension', async (t) => {
  const { username, tokens } = await userWithTokens(t, 2)
  const bystander = await userWithTokens(t, 1)
  const allInactive = async (app: FastifyInstance): Promise<boolean> => !await isActive(app, tokens[0]!.token) && !await isActive(app, tokens[1]!.token)
  await inject(A, { method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: { authorization: bearer(admin.token) }, payload: { suspended: true } }, 200)
  await reflected(t, 'every token of the suspended user is inactive', performance.now(), allInactive)
  for (const app of replicas) t.equal(cachedId(app, bystander.tokens[0]!.token), bystander.tokens[0]!.id, `${name(app)}: another user's token stays cached`)

  // Each replica has now cached the inactive answer: lifting the suspension must drop it too.
  for (const app of replicas) t.equal(cachedId(app, tokens[0]!.token), tokens[0]!.id, `${name(app)} caches the suspended owner's token`)
  await inject(A, { method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: { authorization: bearer(admin.token) }, payload: { suspended: false } }, 200)
  await reflected(t, 'the tokens are active again', performance.now(), async (app) => await isActive(app, tokens[0]!.token) && await isActive(app, tokens[1]!.token))
})

t.test('deleting the owner (admin DELETE /api/v1/admin/users/:username)', async (t) => {
  const { username, tokens: [victim] } = await userWithTokens(t, 1)
  await inject(A, { method: 'DELETE', url: `/api/v1/admin/users/${username}`, headers: { authorization: bearer(admin.token) } }, 204)
  await reflected(t, 'the deleted user\'s token is inactive', performance.now(), inactive(victim!.token))
})

t.test('rotating a token (POST /api/v1/tokens/:id/rotate)', async (t) => {
  const { tokens: [manager] } = await userWithTokens(t, 1, ['read:tokens', 'write:tokens'])
  const res = await inject(A, { method: 'POST', url: `/api/v1/tokens/${manager!.id}/rotate`, headers: { authorization: bearer(manager!.token) } }, 201)
  const since = performance.now()
  const successor = res.json().token as string
  await reflected(t, 'the rotated-away token is inactive', since, inactive(manager!.token))
  for (const app of replicas) t.equal(await isActive(app, successor), true, `${name(app)}: its successor is active`)
})

t.test('deleting an application: its tokens and its credentials', async (t) => {
  const doomed = await seedApplication(A, ['introspect'])
  const doomedAuth = basic(doomed.clientId, doomed.clientSecret)
  const token = await clientCredentialsToken(doomedAuth)
  const { tokens: [probe] } = await userWithTokens(t, 1)
  for (const app of replicas) {
    t.equal(await isActive(app, token), true, `its token is active on ${name(app)}`)
    t.equal((await introspection(app, probe!.token, doomedAuth)).statusCode, 200, `its credentials work (and are now cached) on ${name(app)}`)
  }
  await inject(A, { method: 'DELETE', url: `/api/v1/admin/applications/${doomed.id}`, headers: { authorization: bearer(admin.token) } }, 204)
  const since = performance.now()
  await reflected(t, 'the deleted application\'s token is inactive', since, inactive(token))
  await reflected(t, 'the deleted application\'s credentials are refused', since, async (app) => (await introspection(app, probe!.token, doomedAuth)).statusCode === 401)
})

t.test('rotating an application\'s client secret (POST /api/v1/admin/applications/:id/secret)', async (t) => {
  const caller = await seedApplication(A, ['introspect'])
  const oldAuth = basic(caller.clientId, caller.clientSecret)
  const { tokens: [probe] } = await userWithTokens(t, 1)
  for (const app of replicas) t.equal((await introspection(app, probe!.token, oldAuth)).statusCode, 200, `the secret works (and is now cached) on ${name(app)}`)
  const res = await inject(A, { method: 'POST', url: `/api/v1/admin/applications/${caller.id}/secret`, headers: { authorization: bearer(admin.token) } }, 200)
  const since = performance.now()
  const newAuth = basic(caller.clientId, res.json().client_secret as string)
  await reflected(t, 'the old secret is refused with 401', since, async (app) => {
    const refused = await introspection(app, probe!.token, oldAuth)
    return refused.statusCode === 401 && refused.json().error === 'invalid_client'
  })
  for (const app of replicas) t.equal((await introspection(app, probe!.token, newAuth)).statusCode, 200, `the new secret works on ${name(app)}`)
})

// Below: what needs a second process on a shared PostgreSQL server (see the top of the file).
if (SERVER) {
  const other = B!

  t.test('`tessera user suspend` in another process reaches B within one second', async (t) => {
    const { username, tokens: [victim] } = await userWithTokens(t, 1)
    let stdout = ''
    let stderr = ''
    const progress: { printedAt: number | null, exitCode: number | null | undefined } = { printedAt: null, exitCode: undefined }
    const [command, ...commandArgs] = typescriptCommand('src/cli/index.ts', 'user', 'suspend', '--username', username)
    const child = spawn(command, commandArgs, {
      cwd: process.cwd(),
      env: {
        ...process.env,
        PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
        DATABASE_URL: db.url,
        LOG_LEVEL: 'silent',
        ARGON2_MEMORY_COST: '1024',
        ARGON2_TIME_COST: '1'
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      // The CLI announces the change before it prints this line.
      if (progress.printedAt === null && stdout.includes(`suspended ${username}`)) progress.printedAt = performance.now()
    })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code) => {
        progress.exitCode = code
        resolve(code)
      })
    })
    while (progress.printedAt === null && progress.exitCode === undefined) await sleep(POLL_MS)
    const printedAt = progress.printedAt
    t.ok(printedAt !== null, `the CLI suspended the user (stderr: ${stderr})`)
    if (printedAt === null) return
    let elapsed = performance.now() - printedAt
    let held = false
    while (!held && elapsed <= PROPAGATION_MS) {
      held = !await isActive(other, victim!.token)
      elapsed = performance.now() - printedAt
      if (!held) await sleep(POLL_MS)
    }
    t.ok(held && elapsed <= PROPAGATION_MS, `inactive on B ${Math.round(elapsed)} ms after the CLI reported the suspension`)
    t.equal(await isActive(A, victim!.token), false, 'and on A')
    t.equal(await exited, 0, stderr)
  })

  t.test('the listener reconnects by itself after its connection is killed, and changes reach B again', async (t) => {
    // A connection of our own to the server's default database, to act on the test database from outside.
    const superuser = new pg.Client({ connectionString: process.env.DATABASE_URL })
    await superuser.connect()
    t.teardown(async () => {
      await superuser.query(`alter database ${database()} allow_connections true`).catch(() => {})
      await superuser.end()
    })
    const sql = async <T extends pg.QueryResultRow>(text: string): Promise<T[]> => (await superuser.query<T>(text)).rows
    const invalidationState = async (app: FastifyInstance): Promise<string> => (await app.inject({ method: 'GET', url: '/readyz' })).json().checks.invalidation as string
    async function waitFor (app: FastifyInstance, state: string, timeout: number): Promise<number> {
      const start = performance.now()
      while (await invalidationState(app) !== state) {
        if (performance.now() - start > timeout) return Infinity
        await sleep(POLL_MS)
      }
      return performance.now() - start
    }
    function database (): string {
      return new URL(db.url).pathname.slice(1)
    }
    const listeners = async (): Promise<number[]> => (await sql<{ pid: number }>(
      `select pid from pg_stat_activity where application_name = 'tessera-listener' and datname = '${database()}' order by pid`)).map((row) => row.pid)

    t.test('killed while the database refuses new connections: reconnecting, then listening again', async (t) => {
      const { tokens: [cached] } = await userWithTokens(t, 1)
      const before = await listeners()
      t.equal(before.length, 2, 'A and B each hold one listening connection')
      const connections = [A.services.listener!.connections, other.services.listener!.connections]

      // Keep the listeners out for a moment so the reconnecting state can be observed for sure.
      await sql(`alter database ${database()} allow_connections false`)
      const killed = await sql<{ killed: boolean }>(
        `select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = 'tessera-listener' and datname = '${database()}'`)
      t.strictSame(killed, [{ killed: true }, { killed: true }], 'both listening connections terminated')
      t.ok(await waitFor(other, 'reconnecting', 5000) < Infinity, 'B reports reconnecting')
      t.ok(await waitFor(A, 'reconnecting', 5000) < Infinity, 'A reports reconnecting')
      t.equal(other.services.freshness.degraded, true, 'B\'s cache lifetimes are cut meanwhile')

      await sql(`alter database ${database()} allow_connections true`)
      const reconnectedB = await waitFor(other, 'listening', 15_000)
      const reconnectedA = await waitFor(A, 'listening', 15_000)
      t.ok(reconnectedB < 10_000, `B listens again after ${Math.round(reconnectedB)} ms`)
      t.ok(reconnectedA < 10_000, `A listens again after ${Math.round(reconnectedA)} ms`)
      t.ok(other.services.listener!.connections > connections[1]!, 'B made a new connection')
      t.ok(A.services.listener!.connections > connections[0]!, 'A made a new connection')
      t.equal(other.services.freshness.degraded, false, 'full lifetimes again')
      t.equal(cachedId(other, cached!.token), undefined, 'B cleared its cache on reconnecting: changes may have been missed')
      const after = await listeners()
      t.equal(after.length, 2)
      t.notOk(after.some((pid) => before.includes(pid)), 'on new connections')

      const { tokens: [victim] } = await userWithTokens(t, 1)
      const body = form({ token: victim!.token })
      await inject(A, { method: 'POST', url: '/oauth/revoke', payload: body.payload, headers: body.headers }, 200)
      await reflected(t, 'a revocation on A after the reconnection', performance.now(), inactive(victim!.token))

      const { username, tokens: [reverse] } = await userWithTokens(t, 1)
      await inject(other, { method: 'DELETE', url: `/api/v1/users/${username}/tokens/${reverse!.id}`, headers: { authorization: basic(username, PASSWORD) } }, 204)
      const since = performance.now()
      t.equal(await isActive(other, reverse!.token), false, 'B → A: on B at once')
      let elapsed = performance.now() - since
      let held = false
      while (!held && elapsed <= PROPAGATION_MS) {
        held = !await isActive(A, reverse!.token)
        elapsed = performance.now() - since
        if (!held) await sleep(POLL_MS)
      }
      t.ok(held && elapsed <= PROPAGATION_MS, `B → A: on A after ${Math.round(elapsed)} ms`)
    })

    t.test('killed while the database accepts connections: back within a few seconds', async (t) => {
      const connections = other.services.listener!.connections
      const killed = await sql<{ killed: boolean }>(
        `select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = 'tessera-listener' and datname = '${database()}'`)
      t.equal(killed.length, 2)
      const start = performance.now()
      while (other.services.listener!.connections === connections || await invalidationState(other) !== 'listening') {
        if (performance.now() - start > 10_000) break
        await sleep(POLL_MS)
      }
      t.equal(await invalidationState(other), 'listening')
      t.equal(other.services.listener!.connections, connections + 1, 'one new connection')
      await waitFor(A, 'listening', 10_000)
      const { tokens: [victim] } = await userWithTokens(t, 1)
      const body = form({ token: victim!.token })
      await inject(A, { method: 'POST', url: '/oauth/revoke', payload: body.payload, headers: body.headers }, 200)
      await reflected(t, 'a revocation on A after the second reconnection', performance.now(), inactive(victim!.token))
    })
  })
}
