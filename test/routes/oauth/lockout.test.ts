import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { generateToken } from '../../../src/services/token-format.js'
import { assertOAuthError, assertProblem, basic, build, form, introspection, seedApplication, seedUser } from '../../helper.js'

/**
 * Issue 12: rate limits a stranger could spend on someone else's behalf, argon2 as an
 * unauthenticated CPU sink, and per-address limits that junk keys could reset.
 */

async function post (app: FastifyInstance, url: string, fields: Record<string, string>, options: { authorization?: string, remoteAddress?: string, headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  const body = form(fields)
  return await app.inject({
    method: 'POST',
    url,
    payload: body.payload,
    headers: { ...body.headers, ...(options.authorization !== undefined ? { authorization: options.authorization } : {}), ...options.headers },
    ...(options.remoteAddress !== undefined ? { remoteAddress: options.remoteAddress } : {})
  })
}

/** Counts the argon2 verifications the app runs (a verification against no hash runs none). */
function countVerifications (t: Test, app: FastifyInstance): { runs: number } {
  const counter = { runs: 0 }
  const hasher = app.services.hasher
  const verify = hasher.verify
  hasher.verify = async function (...args: Parameters<typeof verify>) {
    if (args[0] != null && args[0] !== '') counter.runs++
    return await verify.apply(hasher, args)
  }
  t.teardown(() => { hasher.verify = verify })
  return counter
}

/** The Basic header of a client_id with its first character percent-encoded (RFC 6749 §2.3.1 allows it). */
function encodedBasic (clientId: string, secret: string): string {
  const encoded = `%${clientId.charCodeAt(0).toString(16).toUpperCase()}${clientId.slice(1)}`
  return `Basic ${Buffer.from(`${encoded}:${secret}`).toString('base64')}`
}

t.test('with the default limits', async (t) => {
  const app = await build(t)
  const victim = await seedApplication(app, ['read:repository'])
  const wrong = basic(victim.clientId, 'not-the-secret')

  t.test('600+ wrong secrets under a client\'s id, from other addresses, do not lock the client out of /oauth/token and /oauth/revoke (they used up its allowance)', async (t) => {
    const warnings: unknown[] = []
    const warn = app.log.warn
    app.log.warn = ((...args: unknown[]) => { warnings.push(args) }) as typeof warn
    t.teardown(() => { app.log.warn = warn })

    const statuses = new Map<number, number>()
    for (const [endpoint, network] of [['/oauth/token', 1], ['/oauth/revoke', 2]] as const) {
      // 21 addresses × 30 wrong secrets each: within RATE_LIMIT_CLIENT_FAILURES_PER_IP at every address.
      for (let address = 1; address <= 21; address++) {
        for (let attempt = 0; attempt < 30; attempt++) {
          const res = await post(app, endpoint, { grant_type: 'client_credentials', token: generateToken('tsr') }, { authorization: wrong, remoteAddress: `10.${network}.0.${address}` })
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
        }
      }
    }
    t.strictSame(Object.fromEntries(statuses), { 401: 300, 429: 960 }, 'past RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT, failures answer 429')
    t.equal(warnings.length, 1, 'the attack is logged once in the window')

    const token = await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(victim.clientId, victim.clientSecret), remoteAddress: '192.0.2.50' })
    t.equal(token.statusCode, 200, 'the real client still gets its token')
    const revoke = await post(app, '/oauth/revoke', { token: token.json().access_token }, { authorization: basic(victim.clientId, victim.clientSecret), remoteAddress: '192.0.2.50' })
    t.equal(revoke.statusCode, 200, 'and still revokes')
  })

  t.test('a repeated wrong pair is answered without argon2', async (t) => {
    const client = await seedApplication(app, ['read:repository'])
    const verifications = countVerifications(t, app)
    for (let i = 0; i < 3; i++) {
      assertOAuthError(t, await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(client.clientId, 'wrong'), remoteAddress: '192.0.2.60' }), 401, 'invalid_client')
    }
    t.equal(verifications.runs, 1)
  })

  t.test('with every argon2 slot and the queue taken, 503 TESSERA_BUSY with Retry-After: 1 (callers queued for seconds)', async (t) => {
    const client = await seedApplication(app, ['read:repository'])
    await seedUser(app, 'busy-bee')
    const { slots } = app.services.hasher
    const held = await Promise.all(Array.from({ length: slots.capacity }, async () => await slots.acquire()))
    const queued = Array.from({ length: slots.queue }, async () => await slots.acquire())
    t.teardown(async () => {
      for (const release of held) release()
      // Each release hands its slot to the next in the queue: one at a time.
      for (const waiting of queued) (await waiting)()
    })

    const oauth = await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(client.clientId, client.clientSecret), remoteAddress: '192.0.2.70' })
    assertOAuthError(t, oauth, 503, 'temporarily_unavailable', 'the server is busy verifying credentials; retry in a second')
    t.equal(oauth.headers['retry-after'], '1')

    const rest = await app.inject({
      method: 'POST', url: '/api/v1/users/busy-bee/tokens', payload: { name: 'x', scopes: ['read:tokens'] }, headers: { authorization: basic('busy-bee', 'correct horse battery') }, remoteAddress: '192.0.2.70'
    })
    assertProblem(t, rest, 503, 'TESSERA_BUSY', 'the server is busy verifying credentials; retry in a second')
    t.equal(rest.headers['retry-after'], '1')
  })
})

t.test('with tight limits', async (t) => {
  const app = await build(t, {
    RATE_LIMIT_CLIENT_FAILURES_PER_IP: '3',
    RATE_LIMIT_CLIENT_FAILURES_PER_CLIENT: '5',
    RATE_LIMIT_INTROSPECT_PER_CLIENT: '2',
    RATE_LIMIT_PASSWORD_PER_IP: '3',
    RATE_LIMIT_PASSWORD_PER_USER: '100'
  })

  t.test('an address past RATE_LIMIT_CLIENT_FAILURES_PER_IP gets 429 with Retry-After before any argon2 runs', async (t) => {
    const client = await seedApplication(app, ['read:repository'])
    const verifications = countVerifications(t, app)
    const attempt = async (secret: string, remoteAddress = '198.51.100.1', clientId = client.clientId): Promise<LightMyRequestResponse> =>
      await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(clientId, secret), remoteAddress })

    for (let i = 1; i <= 3; i++) assertOAuthError(t, await attempt(`wrong-${i}`), 401, 'invalid_client')
    t.equal(verifications.runs, 3)
    const refused = await attempt('wrong-4')
    assertOAuthError(t, refused, 429, 'rate_limited', /too many failed client authentications from this address: at most 3 in 60 seconds/)
    t.match(refused.headers['retry-after'], /^[1-9][0-9]*$/)
    t.equal((await attempt(client.clientSecret)).statusCode, 429, 'even the right secret is not verified from there')
    t.equal((await attempt('anything', '198.51.100.1', 'no-such-client')).statusCode, 429, 'nor an unknown client_id')
    t.equal(verifications.runs, 3, 'no argon2 ran for any of them')

    t.equal((await attempt(client.clientSecret, '198.51.100.2')).statusCode, 200, 'another address is not limited')
    t.equal((await attempt(client.clientSecret)).statusCode, 200, 'a pair verified since costs nothing and passes, even from there')
  })

  t.test('an IPv6 address counts by its /64 in the client failure limit', async (t) => {
    const client = await seedApplication(app, ['read:repository'])
    for (let i = 1; i <= 3; i++) {
      t.equal((await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(client.clientId, `wrong-${i}`), remoteAddress: `2001:db8:aa:1::${i}` })).statusCode, 401)
    }
    t.equal((await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(client.clientId, 'wrong-4'), remoteAddress: '2001:db8:aa:1:ffff::9' })).statusCode, 429)
  })

  t.test('a percent-encoded Basic client_id counts as the decoded one (it got a fresh bucket)', async (t) => {
    const client = await seedApplication(app, ['introspect'])
    const token = generateToken('tsr')
    t.equal((await introspection(app, token, basic(client.clientId, client.clientSecret))).statusCode, 200)
    t.equal((await introspection(app, token, encodedBasic(client.clientId, client.clientSecret))).statusCode, 200, 'the encoded id authenticates')
    assertOAuthError(t, await introspection(app, token, encodedBasic(client.clientId, client.clientSecret)), 429, 'rate_limited')
    assertOAuthError(t, await introspection(app, token, basic(client.clientId, client.clientSecret)), 429, 'rate_limited')

    const target = await seedApplication(app, ['read:repository'])
    for (let i = 1; i <= 5; i++) {
      const authorization = i % 2 === 0 ? encodedBasic(target.clientId, `wrong-${i}`) : basic(target.clientId, `wrong-${i}`)
      t.equal((await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization, remoteAddress: `203.0.113.${i}` })).statusCode, 401, `failure ${i}`)
    }
    assertOAuthError(t, await post(app, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: encodedBasic(target.clientId, 'wrong-6'), remoteAddress: '203.0.113.6' }),
      429, 'rate_limited', /too many failed authentications for this client/)
  })

  t.test('an IPv6 /64 shares one password bucket, and an IPv4-mapped address is its IPv4 address (each address had its own)', async (t) => {
    const attempt = async (remoteAddress: string, username: string): Promise<LightMyRequestResponse> => await app.inject({
      method: 'POST', url: `/api/v1/users/${username}/tokens`, payload: { name: 'x', scopes: ['read:tokens'] }, headers: { authorization: basic(username, 'guess') }, remoteAddress
    })
    for (let i = 1; i <= 3; i++) t.equal((await attempt(`2001:db8:1:2::${i}`, `user-${i}`)).statusCode, 401)
    assertProblem(t, await attempt('2001:db8:1:2:abcd::1', 'user-4'), 429, 'TESSERA_RATE_LIMITED')
    t.equal((await attempt('2001:db8:1:3::1', 'user-5')).statusCode, 401, 'the next /64 has its own')

    for (let i = 1; i <= 3; i++) t.equal((await attempt('192.0.2.99', `mapped-${i}`)).statusCode, 401)
    assertProblem(t, await attempt('::ffff:192.0.2.99', 'mapped-4'), 429, 'TESSERA_RATE_LIMITED')
  })
})

t.test('behind a proxy that appends to X-Forwarded-For, a hop count or the proxy\'s range gives spoofed entries no fresh bucket', async (t) => {
  for (const trust of ['1', '10.0.0.0/8']) {
    const app = await build(t, { TRUST_PROXY: trust, RATE_LIMIT_PASSWORD_PER_IP: '2', RATE_LIMIT_PASSWORD_PER_USER: '100' })
    const statuses: number[] = []
    for (let i = 1; i <= 3; i++) {
      const res = await app.inject({
        method: 'POST',
        url: `/api/v1/users/someone-${i}/tokens`,
        payload: { name: 'x', scopes: ['read:tokens'] },
        // The client wrote the first entry; the proxy appended the address it saw.
        headers: { authorization: basic(`someone-${i}`, 'guess'), 'x-forwarded-for': `198.18.0.${i}, 203.0.113.77` },
        remoteAddress: '10.0.0.2'
      })
      statuses.push(res.statusCode)
    }
    t.strictSame(statuses, [401, 401, 429], `TRUST_PROXY=${trust}`)
  }
})
