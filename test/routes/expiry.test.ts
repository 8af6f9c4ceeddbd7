import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { tokenState } from '../../src/services/token-management.js'
import { TokenCache } from '../../src/services/token-cache.js'
import { isActive, type TokenRecord } from '../../src/services/token-resolver.js'
import { basic, bearer, build, introspect, seedApplication, seedToken, seedUser } from '../helper.js'

const PASSWORD = 'correct horse battery'

interface Created { id: string, token: string, created_at: string, expires_at: string }
interface View { id: string, name: string, state: string, revoked_at: string | null, expires_at: string | null }

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

const app = await build(t)
const resourceServer = await seedApplication(app, ['introspect'])
await seedUser(app, 'alice')
const reader = await seedToken(app, 'alice', { name: 'reader', scopes: ['read:tokens'] })

async function create (name: string, expiresIn: number): Promise<Created> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/users/alice/tokens',
    headers: { authorization: basic('alice', PASSWORD) },
    payload: { name, scopes: ['read:repository'], expires_in: expiresIn }
  })
  if (res.statusCode !== 201) throw new Error(`token creation answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

const introspectAsServer = async (token: string): Promise<Record<string, unknown>> => await introspect(app, token, basic(resourceServer.clientId, resourceServer.clientSecret))

async function tokenInfo (token: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
}

async function listed (url: string): Promise<View[]> {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: bearer(reader.token) } })
  if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

t.test('a token with expires_in 2 works until its expiry and never after, cached or not', async (t) => {
  const neverSeen = await create('never-seen', 2)
  const cachedLate = await create('cached-late', 2)
  const cachedEarly = await create('cached-early', 2)
  t.match(await introspectAsServer(cachedEarly.token), { active: true, exp: Math.floor(Date.parse(cachedEarly.expires_at) / 1000) })
  const all = [neverSeen, cachedLate, cachedEarly]
  for (const token of all) t.equal(Date.parse(token.expires_at) - Date.parse(token.created_at), 2000, 'expires two seconds after creation')
  t.equal(app.services.cache.get(app.services.resolver.cacheKey(cachedEarly.token))?.id, cachedEarly.id, 'and is now cached')

  await sleep(Date.parse(cachedLate.expires_at) - 700 - Date.now())
  t.match(await introspectAsServer(cachedLate.token), { active: true }, 'active shortly before its expiry, and now cached')
  const info = await tokenInfo(cachedLate.token)
  t.equal(info.statusCode, 200)
  t.equal(info.json().expires_in, 0, 'token/info counts the whole seconds left')

  const lastExpiry = Math.max(...all.map((token) => Date.parse(token.expires_at)))
  // A timer may fire a millisecond early by the wall clock (it runs on the monotonic one).
  await sleep(lastExpiry + 20 - Date.now())
  t.ok(Date.now() >= lastExpiry, 'every expiry has been reached')
  for (const token of all) {
    t.strictSame(await introspectAsServer(token.token), { active: false }, `introspection: ${token.id} is inactive`)
    const res = await tokenInfo(token.token)
    t.equal(res.statusCode, 401, 'token/info refuses it')
    t.strictSame(res.json(), { error: 'invalid_token', error_description: 'the access token is invalid, expired or revoked' })
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
  }

  t.test('the review listing shows them as expired, not revoked, and filters by state', async (t) => {
    const ids = all.map((token) => token.id).reverse()
    const views = await listed('/api/v1/tokens')
    t.strictSame(views.map((view) => [view.id, view.state, view.revoked_at]), [...ids.map((id) => [id, 'expired', null]), [reader.id, 'active', null]])
    t.strictSame((await listed('/api/v1/tokens?state=expired')).map((view) => view.id), ids)
    t.strictSame((await listed('/api/v1/tokens?state=active')).map((view) => view.id), [reader.id])
    t.strictSame(await listed('/api/v1/tokens?state=revoked'), [])
    const one = await app.inject({ method: 'GET', url: `/api/v1/tokens/${neverSeen.id}`, headers: { authorization: bearer(reader.token) } })
    t.match(one.json(), { id: neverSeen.id, state: 'expired', revoked_at: null, expires_at: neverSeen.expires_at })
  })

  t.test('the Forgejo listing shows them as expired too', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/alice/tokens', headers: { authorization: basic('alice', PASSWORD) } })
    t.equal(res.headers['x-total-count'], '4')
    t.strictSame((res.json() as View[]).map((view) => view.state), ['expired', 'expired', 'expired', 'active'])
  })

  t.test('an expired token cannot be rotated', async (t) => {
    const writer = await seedToken(app, 'alice', { name: 'writer', scopes: ['write:tokens'] })
    const rotate = await app.inject({ method: 'POST', url: `/api/v1/tokens/${neverSeen.id}/rotate`, headers: { authorization: bearer(writer.token) } })
    t.equal(rotate.statusCode, 409)
    t.equal(rotate.json().detail, 'this token has expired; create a new one instead')
  })
})

t.test('an expired read:tokens token is refused by the API with a 401', async (t) => {
  const shortReader = await seedToken(app, 'alice', { name: 'short-reader', scopes: ['read:tokens'], expires_in: 1 })
  const expiresAt = Date.now() + 1000
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(shortReader.token) } })).statusCode, 200, 'works while live, and is cached')
  await sleep(expiresAt + 50 - Date.now())
  const res = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(shortReader.token) } })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
})

t.test('at the very millisecond of its expiry a token is inactive and listed as expired', async (t) => {
  const expiresAt = Date.parse('2026-06-01T12:00:00.000Z')
  const record: TokenRecord = {
    id: '0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee',
    scopes: ['read:repository'],
    effectiveScope: 'read:repository',
    audience: null,
    userId: null,
    username: null,
    applicationId: '0190aaaa-bbbb-7ccc-8ddd-000000000000',
    clientId: 'internal',
    createdAt: expiresAt / 1000 - 60,
    expiresAt,
    revoked: false,
    ownerActive: true,
    introspectionPolicy: null
  }
  t.equal(isActive(record, expiresAt - 1), true, 'one millisecond before')
  t.equal(isActive(record, expiresAt), false, 'at the expiry')
  t.equal(tokenState({ expiresAt: new Date(expiresAt), revokedAt: null }, new Date(expiresAt - 1)), 'active')
  t.equal(tokenState({ expiresAt: new Date(expiresAt), revokedAt: null }, new Date(expiresAt)), 'expired')
  t.equal(tokenState({ expiresAt: new Date(expiresAt), revokedAt: new Date(expiresAt - 1000) }, new Date(expiresAt)), 'revoked', 'revocation wins over expiry')

  const cache = new TokenCache({ maxEntries: 10, maxBytes: 0, ttl: 30, negativeTtl: 5 })
  cache.set('digest', record, expiresAt)
  t.equal(cache.get('digest'), undefined, 'the cache does not keep a record at its expiry')
})
