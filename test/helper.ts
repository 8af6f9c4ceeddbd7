import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import pg from 'pg'
import app from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { dumpEmptyCluster, startEmbeddedPostgres } from '../src/db/embedded.js'
import { serverOptions } from '../src/options.js'
import { ensureInternalApplication, createApplication } from '../src/services/applications.js'
import { SYSTEM_ACTOR } from '../src/services/audit.js'
import { issuePersonalToken, type NewTokenInput } from '../src/services/tokens.js'
import { createUser } from '../src/services/users.js'
import { User } from '../src/entities/user.js'

/** The subset of node-tap's Test the helpers use. */
export interface TestLike {
  teardown: (fn: () => unknown) => void
}

/**
 * Settings every test starts from: cheap argon2 (the real algorithm, lower cost), quiet logs.
 * Tests override any variable through `env`.
 */
export const TEST_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  ARGON2_MEMORY_COST: '1024',
  ARGON2_TIME_COST: '1',
  SCOPES: 'read:repository write:repository'
}

export interface TestDatabase {
  url: string
  /** Whether this is the embedded PGlite (one connection) rather than a server database. */
  embedded: boolean
  close: () => Promise<void>
}

/**
 * One initdb per test process: every embedded test database starts from its dump. Besides the
 * time, this avoids most of the WebAssembly instantiate/free churn under which V8 has been seen
 * to abort a process (nodejs/node#64500: a JIT page registry CHECK, SIGILL/SIGSEGV).
 */
let emptyCluster: Promise<Blob> | undefined

/**
 * A fresh, empty database for one test file: a new database on the server named by
 * DATABASE_URL when it is set (CI runs the suite that way), else an in-memory embedded PGlite.
 */
export async function createTestDatabase (): Promise<TestDatabase> {
  const serverUrl = process.env.DATABASE_URL
  if (serverUrl === undefined || serverUrl === '') {
    emptyCluster ??= dumpEmptyCluster()
    const embedded = await startEmbeddedPostgres('memory://', { template: await emptyCluster })
    return { url: embedded.url, embedded: true, close: embedded.close }
  }
  const name = `tessera_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`create database ${name}`)
  await admin.end()
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    embedded: false,
    async close () {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      await client.query(`drop database if exists ${name} with (force)`)
      await client.end()
    }
  }
}

export interface TestApp {
  app: FastifyInstance
  config: Config
  db: TestDatabase
}

/** Builds the whole application on a fresh database, closed when the test ends. */
export async function build (t: TestLike, env: Record<string, string> = {}, options: { internalApp?: boolean } = {}): Promise<FastifyInstance> {
  return (await buildWith(t, env, options)).app
}

export interface BuildOptions {
  /** Create the built-in application (default true). */
  internalApp?: boolean
  /** A database to reuse (not closed at the end); a fresh one by default. */
  db?: TestDatabase
  /** pino options laid over the server's (a level, a stream): to read what the app logs. */
  logger?: FastifyServerOptions['logger']
}

export async function buildWith (t: TestLike, env: Record<string, string> = {}, options: BuildOptions = {}): Promise<TestApp> {
  const db = options.db ?? await createTestDatabase()
  // On a server database the app runs as in production (a real pool); embedded uses one connection.
  const config = loadConfig({ ...TEST_ENV, ...(db.embedded ? {} : { DATABASE_URL: db.url }), ...env })
  const fastify = Fastify(serverOptions(config, options.logger)).withTypeProvider<TypeBoxTypeProvider>()
  await fastify.register(app, { config, databaseUrl: db.url })
  await fastify.ready()
  if (options.internalApp ?? true) await ensureInternalApplication(fastify.orm.em.fork())
  t.teardown(async () => {
    await fastify.close()
    if (options.db === undefined) await db.close()
  })
  return { app: fastify, config, db }
}

export function basic (username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

export function bearer (token: string): string {
  return `Bearer ${token}`
}

/** Creates a user directly through the service layer (the admin API comes later). */
export async function seedUser (app: FastifyInstance, username: string, options: { password?: string | null, admin?: boolean, suspended?: boolean } = {}): Promise<User> {
  const em = app.orm.em.fork()
  const user = await em.transactional(async (tx) => {
    const created = await createUser(tx, app.services.hasher, {
      username,
      password: options.password === undefined ? 'correct horse battery' : options.password,
      admin: options.admin ?? false
    }, SYSTEM_ACTOR)
    if (options.suspended === true) created.suspendedAt = new Date()
    return created
  })
  return user
}

/** Issues a personal token for `username` through the service layer; returns the plaintext and id. */
export async function seedToken (app: FastifyInstance, username: string, input: Partial<NewTokenInput> = {}): Promise<{ token: string, id: string }> {
  const em = app.orm.em.fork()
  return await em.transactional(async (tx) => {
    const owner = await tx.findOneOrFail(User, { username })
    const issued = await issuePersonalToken(tx, app.services.issuer, {
      ownerId: owner.id,
      input: { name: input.name ?? `token-${randomBytes(4).toString('hex')}`, scopes: input.scopes ?? ['read:tokens'], ...input },
      actor: SYSTEM_ACTOR
    })
    return { token: issued.plaintext, id: issued.token.id }
  })
}

/** Creates an OAuth application; returns its client_id and secret. */
export async function seedApplication (app: FastifyInstance, scopes: string[] = ['introspect'], extra: { introspectionAudiences?: string[] | null, introspectionScopes?: string[] | null, confidential?: boolean, tokenFormat?: 'opaque' | 'jwt' } = {}): Promise<{ clientId: string, clientSecret: string, id: string }> {
  const em = app.orm.em.fork()
  const created = await em.transactional(async (tx) => await createApplication(tx, {
    hasher: app.services.hasher,
    scopes: app.config.scopes,
    tokenPrefix: app.config.TOKEN_PREFIX
  }, { name: `app-${randomBytes(3).toString('hex')}`, scopes, ...extra }, SYSTEM_ACTOR))
  return { clientId: created.application.clientId, clientSecret: created.clientSecret ?? '', id: created.application.id }
}

export function form (fields: Record<string, string>): { payload: string, headers: Record<string, string> } {
  return { payload: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } }
}

/** The media type of every REST error (RFC 9457). */
export const PROBLEM_JSON = 'application/problem+json; charset=utf-8'

/** An RFC 9457 problem with this status and code (and detail, when given), carrying the request id. */
export function assertProblem (t: Test, res: LightMyRequestResponse, status: number, code: string, detail?: string | RegExp): void {
  t.equal(res.statusCode, status, `status ${status}`)
  t.equal(res.headers['content-type'], PROBLEM_JSON, 'problem+json')
  t.match(res.json(), { type: 'about:blank', status, code, instance: String, ...(detail !== undefined ? { detail } : {}) })
}

/** An RFC 6749 §5.2 error: exactly `error` and `error_description`, never cached. */
export function assertOAuthError (t: Test, res: LightMyRequestResponse, status: number, error: string, description?: string | RegExp): void {
  t.equal(res.statusCode, status, `status ${status}`)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json() as Record<string, unknown>
  t.strictSame(Object.keys(body).sort(), ['error', 'error_description'])
  t.equal(body.error, error)
  t.type(body.error_description, 'string')
  if (description !== undefined) t.match(body.error_description, description)
}

/** POST /oauth/introspect for `token` as `authorization` (from `options.remoteAddress` when given); the raw answer. */
export async function introspection (app: FastifyInstance, token: string, authorization: string, extra: Record<string, string> = {}, options: { remoteAddress?: string } = {}): Promise<LightMyRequestResponse> {
  const body = form({ token, ...extra })
  return await app.inject({ method: 'POST', url: '/oauth/introspect', payload: body.payload, headers: { ...body.headers, authorization }, ...options })
}

/** The introspection answer for `token` as `authorization`; throws unless it is a 200. */
export async function introspect (app: FastifyInstance, token: string, authorization: string): Promise<Record<string, unknown>> {
  const res = await introspection(app, token, authorization)
  if (res.statusCode !== 200) throw new Error(`introspection answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/**
 * The machine's Redis (TEST_REDIS_URL points elsewhere) and a key prefix of this call's own, so
 * tests, runs and CI's two suites never share counts.
 */
export function testRedis (): { url: string, prefix: string } {
  return { url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `tessera-test-${randomBytes(6).toString('hex')}:` }
}

/**
 * How a test starts a TypeScript entry point (src/cli/index.ts, src/server.ts) in a child
 * process: this Node with this test process's own loaders (node-tap's TypeScript loader). c8
 * merges the coverage every process reports for a file by byte offset in the code that process
 * compiled: a child that compiled it otherwise (tsx emits whitespace-minified code) would
 * scramble the merged figures, depending on the order in which c8 reads the processes' files.
 */
export function typescriptCommand (script: string, ...args: string[]): [string, ...string[]] {
  return [process.execPath, ...process.execArgv, script, ...args]
}
