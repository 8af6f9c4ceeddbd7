import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { generateToken } from '../../src/services/token-format.js'
import { basic, bearer, build, introspection, seedApplication, seedToken, seedUser } from '../helper.js'

/*
 * The token cache's bounds, seen through the routes (test/services/token-cache.test.ts checks the
 * cache alone; test/routes/expiry.test.ts checks expiry through introspection and token/info).
 */

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

async function setup (env: Record<string, string>): Promise<{ app: FastifyInstance, check: (path: 'introspect' | 'token/info' | 'verify', token: string) => Promise<LightMyRequestResponse> }> {
  const app = await build(t, env)
  const caller = await seedApplication(app, ['introspect'])
  await seedUser(app, 'alice')
  return {
    app,
    async check (path, token) {
      if (path === 'introspect') return await introspection(app, token, basic(caller.clientId, caller.clientSecret))
      return await app.inject({ method: 'GET', url: path === 'verify' ? '/auth/verify' : '/oauth/token/info', headers: { authorization: bearer(token) } })
    }
  }
}

t.test('the cache never holds more than CACHE_MAX_ENTRIES, whichever path fills it', async (t) => {
  const MAX = 5
  const { app, check } = await setup({ CACHE_MAX_ENTRIES: String(MAX), CACHE_TTL: '600', CACHE_NEGATIVE_TTL: '300' })
  const tokens = []
  for (let n = 0; n < 12; n++) tokens.push(await seedToken(app, 'alice', { name: `bounded-${n}` }))
  const unknown = Array.from({ length: 4 }, () => generateToken(app.config.TOKEN_PREFIX))
  const paths = ['introspect', 'token/info', 'verify'] as const
  let largest = 0
  for (const [n, { token }] of tokens.entries()) {
    const res = await check(paths[n % 3]!, token)
    t.equal(res.statusCode, 200, `token ${n} is valid`)
    largest = Math.max(largest, app.services.cache.size)
    if (n % 3 === 0) {
      // Unknown (well-formed) values are remembered as unknown: they count against the bound too.
      const answer = await check('introspect', unknown[n / 3]!)
      t.strictSame(answer.json(), { active: false })
      largest = Math.max(largest, app.services.cache.size)
    }
  }
  t.equal(largest, MAX, `the cache filled up to ${MAX} entries and never beyond`)
  t.equal(app.services.cache.size, MAX)
  t.equal(app.services.cache.stats.evictions, tokens.length + unknown.length - MAX, 'every entry beyond the bound evicted one')

  const newest = tokens.slice(-MAX + 1)
  for (const { token, id } of newest) t.equal(app.services.cache.get(app.services.resolver.cacheKey(token))?.id, id, 'a recent token is still cached')
  t.equal(app.services.cache.get(app.services.resolver.cacheKey(tokens[0]!.token)), undefined, 'the oldest one was evicted')
  t.match((await check('introspect', tokens[0]!.token)).json(), { active: true }, 'an evicted token is answered from the database')
  t.equal(app.services.cache.size, MAX, 'and coming back evicts another')
})

t.test('CACHE_MAX_BYTES bounds the cache as well', async (t) => {
  const { app, check } = await setup({ CACHE_MAX_ENTRIES: '1000', CACHE_MAX_BYTES: '3000', CACHE_TTL: '600' })
  let largest = 0
  for (let n = 0; n < 15; n++) {
    const { token } = await seedToken(app, 'alice', { name: `sized-${n}`, scopes: ['read:tokens', 'read:repository'] })
    t.match((await check('introspect', token)).json(), { active: true })
    largest = Math.max(largest, app.services.cache.size)
  }
  // Every record is estimated at several hundred bytes: a handful fit in 3000.
  t.ok(largest >= 1 && largest < 15, `at most ${largest} records were held at once`)
  t.ok(app.services.cache.stats.evictions >= 15 - largest, 'the rest were evicted')
})

t.test('a token cached by /auth/verify just before it expires is refused right after', async (t) => {
  const { app, check } = await setup({ CACHE_TTL: '600' })
  const { token } = await seedToken(app, 'alice', { name: 'short', scopes: ['read:repository'], expires_in: 1 })
  const expiresAt = Date.now() + 1000
  const live = await check('verify', token)
  t.equal(live.statusCode, 200, 'valid while live, and now cached')
  t.ok(app.services.cache.get(app.services.resolver.cacheKey(token)) !== undefined)
  await sleep(expiresAt + 20 - Date.now())
  const expired = await check('verify', token)
  t.equal(expired.statusCode, 401, 'refused once expired, although CACHE_TTL is ten minutes')
  t.equal(expired.headers['www-authenticate'], 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
})
