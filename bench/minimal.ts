/**
 * The minimal implementation: the work any introspection endpoint must do on a cached request,
 * and nothing else — Fastify with its logger off, @fastify/formbody, a body schema and a response
 * schema; the caller's Basic credentials checked against a cache of verified ones (keyed SHA-256
 * of the header, as Tessera keys its own); the token's keyed SHA-256; one `lru-cache` hit; the
 * RFC 7662 answer built from the cached record. No rate limit, metrics, request id, hooks or
 * security headers. Between the floor (bench/reference.ts, a constant answer) and Tessera, it shows
 * how much of the gap is necessary work.
 *
 *   POST /introspect  form `token=…`, Authorization: Basic (BENCH_BASIC)
 *   GET  /info        Authorization: Bearer (the same record: the necessary work of a bearer route)
 *   GET  /healthz     ready
 *
 * BENCH_BASIC is the Authorization header of the bench's caller and BENCH_TOKEN the token whose
 * record is cached; both come from bench/run.ts. Compiled like the reference (bench/build.ts).
 */
import { hash, randomBytes } from 'node:crypto'
import Fastify, { type FastifyReply } from 'fastify'
import formbody from '@fastify/formbody'
import { LRUCache } from 'lru-cache'
import { IntrospectBody, Introspection } from './wire.js'

const port = Number(process.env.PORT ?? 3100)
const basic = process.env.BENCH_BASIC ?? ''
const token = process.env.BENCH_TOKEN ?? ''
const issuer = `http://127.0.0.1:${port}`

interface CachedToken {
  id: string
  scope: string
  clientId: string
  username: string
  userId: string
  audience: string[]
  createdAt: number
  expiresAt: number
}

const PREFIX = randomBytes(32).toString('base64')
function keyed (value: string): string {
  return hash('sha256', PREFIX + value, 'base64url')
}

const now = Math.floor(Date.now() / 1000)
const tokens = new LRUCache<string, CachedToken>({ max: 100_000 })
tokens.set(keyed(token), {
  id: '01a2b3c4-0000-7000-8000-000000000001',
  scope: 'read:tokens',
  clientId: 'internal',
  username: 'bench',
  userId: '01a2b3c4-0000-7000-8000-000000000000',
  audience: ['bench'],
  createdAt: now,
  expiresAt: now + 86_400
})
const verifiedCallers = new LRUCache<string, { clientId: string }>({ max: 10_000 })
verifiedCallers.set(keyed(basic), { clientId: 'bench-caller' })

function answer (record: CachedToken | undefined): Record<string, unknown> {
  if (record === undefined || record.expiresAt <= Date.now() / 1000) return { active: false }
  return {
    active: true,
    scope: record.scope,
    client_id: record.clientId,
    username: record.username,
    token_type: 'Bearer',
    exp: record.expiresAt,
    iat: record.createdAt,
    sub: record.userId,
    aud: record.audience,
    iss: issuer
  }
}

function unauthorized (reply: FastifyReply): Record<string, unknown> {
  reply.code(401).header('www-authenticate', 'Basic realm="bench"')
  return { active: false }
}

const app = Fastify({ logger: false })
await app.register(formbody)

app.post('/introspect', {
  schema: { body: IntrospectBody, response: { 200: Introspection, 401: Introspection } }
}, async function (request, reply) {
  const authorization = request.headers.authorization
  if (authorization === undefined || !authorization.startsWith('Basic ') || verifiedCallers.get(keyed(authorization)) === undefined) return unauthorized(reply)
  reply.header('cache-control', 'no-store')
  return answer(tokens.get(keyed((request.body as { token: string }).token)))
})

app.get('/info', { schema: { response: { 200: Introspection, 401: Introspection } } }, async function (request, reply) {
  const authorization = request.headers.authorization
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return unauthorized(reply)
  return answer(tokens.get(keyed(authorization.slice(7))))
})

app.get('/healthz', async function () { return { status: 'ok' } })

let closing = false
async function close (): Promise<void> {
  if (closing) return
  closing = true
  await app.close()
  process.exit(0)
}
process.once('SIGTERM', () => { close().catch(() => process.exit(1)) })
process.once('SIGINT', () => { close().catch(() => process.exit(1)) })

await app.listen({ host: '127.0.0.1', port })
