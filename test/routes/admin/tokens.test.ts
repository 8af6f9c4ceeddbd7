import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { JWT_TYPES } from '../../../src/services/signing-keys.js'
import { generateToken } from '../../../src/services/token-format.js'
import { assertProblem, basic, bearer, build, form, introspection, seedApplication, seedToken, seedUser } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const VALID_SCOPES = 'admin introspect read:repository read:tokens write:repository write:tokens'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const DAY = 86_400_000

const app = await build(t, { PUBLIC_URL })
const root = await seedUser(app, 'root', { admin: true })
const adminToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token
const introspector = await seedApplication(app)

type Method = 'GET' | 'POST' | 'DELETE'

async function admin (method: Method, url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({
    method,
    url,
    headers: { authorization: bearer(adminToken) },
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
  })
}

async function introspect (token: string): Promise<boolean> {
  return (await introspection(app, token, basic(introspector.clientId, introspector.clientSecret))).json().active
}

function isCached (token: string): boolean {
  return app.services.cache.get(app.services.digester.cacheKey(token)) != null
}

async function sql<T = unknown> (query: string, params: unknown[] = []): Promise<T[]> {
  return await app.orm.em.getConnection().execute<T[]>(query, params)
}

async function count (from: string, params: unknown[] = []): Promise<number> {
  const rows = await sql<{ n: number }>(`select count(*)::int as n from ${from}`, params)
  return rows[0]?.n ?? -1
}

function names (res: LightMyRequestResponse): string[] {
  return (res.json() as Array<{ name: string }>).map((token) => token.name)
}

t.test('listing a user\'s tokens', async (t) => {
  await seedUser(app, 'lena')
  const now = Date.now()
  // Four tokens in creation order, with fixed creation dates and distinct expiries.
  const tokens = {
    alpha: await seedToken(app, 'lena', { name: 'alpha-active' }),
    beta: await seedToken(app, 'lena', { name: 'beta-expired' }),
    gamma: await seedToken(app, 'lena', { name: 'gamma-revoked' }),
    delta: await seedToken(app, 'lena', { name: 'delta-long', scopes: ['write:repository'] })
  }
  const dates: Array<[string, string, Date]> = [
    [tokens.alpha.id, '2024-01-01T00:00:00.000Z', new Date(now + 10 * DAY)],
    [tokens.beta.id, '2024-02-01T00:00:00.000Z', new Date(now - DAY)],
    [tokens.gamma.id, '2024-03-01T00:00:00.000Z', new Date(now + 20 * DAY)],
    [tokens.delta.id, '2024-04-01T00:00:00.000Z', new Date(now + 300 * DAY)]
  ]
  for (const [id, createdAt, expiresAt] of dates) await sql('update access_tokens set created_at = ?, expires_at = ? where id = ?', [createdAt, expiresAt, id])
  await sql('update access_tokens set last_used_at = ?, last_used_ip = ? where id = ?', ['2025-01-01T00:00:00.000Z', '192.0.2.7', tokens.alpha.id])
  t.equal((await admin('DELETE', `/api/v1/admin/users/lena/tokens/${tokens.gamma.id}`)).statusCode, 204)
  const split = new Date(now + 15 * DAY).toISOString()

  t.test('without filters: every token, newest first, with X-Total-Count and Link', async (t) => {
    const res = await admin('GET', '/api/v1/admin/users/lena/tokens')
    t.equal(res.statusCode, 200)
    t.strictSame(names(res), ['delta-long', 'gamma-revoked', 'beta-expired', 'alpha-active'])
    t.equal(res.headers['x-total-count'], '4')
    t.equal(res.headers.link, `<${PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=1&limit=20>; rel="first", <${PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=1&limit=20>; rel="last"`)
  })

  t.test('each entry is the token view, never the secret or the digest', async (t) => {
    const res = await admin('GET', '/api/v1/admin/users/lena/tokens?q=alpha')
    const [entry] = res.json()
    t.strictSame(Object.keys(entry).sort(), ['application', 'audience', 'created_at', 'created_by', 'effective_scopes', 'expires_at', 'id', 'last_used', 'last_used_at', 'last_used_ip',
      'name', 'owner', 'revoked_at', 'rotated_from', 'scope', 'scopes', 'state', 'token_last_eight'])
    t.match(entry, {
      id: tokens.alpha.id,
      name: 'alpha-active',
      scopes: ['read:tokens'],
      application: { client_id: 'internal' },
      owner: { username: 'lena' },
      token_last_eight: tokens.alpha.token.slice(-8),
      state: 'active',
      created_at: '2024-01-01T00:00:00.000Z',
      last_used_at: '2025-01-01T00:00:00.000Z',
      last_used_ip: '192.0.2.7',
      revoked_at: null
    })
    t.notOk(res.body.includes(tokens.alpha.token), 'no plaintext')
    t.notOk(res.body.includes(app.services.digester.digest(tokens.alpha.token)), 'no digest')
  })

  const filters: Array<[string, string[]]> = [
    ['state=active', ['delta-long', 'alpha-active']],
    ['state=expired', ['beta-expired']],
    ['state=revoked', ['gamma-revoked']],
    ['state=all', ['delta-long', 'gamma-revoked', 'beta-expired', 'alpha-active']],
    ['q=GAMMA', ['gamma-revoked']],
    ['q=-', ['delta-long', 'gamma-revoked', 'beta-expired', 'alpha-active']],
    ['q=_', []],
    ['created_before=2024-02-15T00:00:00Z', ['beta-expired', 'alpha-active']],
    ['created_after=2024-02-15T00:00:00Z', ['delta-long', 'gamma-revoked']],
    ['created_after=2024-01-15T00:00:00Z&created_before=2024-03-15T00:00:00Z', ['gamma-revoked', 'beta-expired']],
    [`expires_before=${split}`, ['beta-expired', 'alpha-active']],
    [`expires_after=${split}`, ['delta-long', 'gamma-revoked']],
    ['last_used_after=2024-12-01T00:00:00Z', ['alpha-active']],
    ['last_used_before=2024-12-01T00:00:00Z', []],
    [`state=active&expires_after=${split}`, ['delta-long']]
  ]
  for (const [query, expected] of filters) {
    t.test(`${query} lists ${expected.length === 0 ? 'nothing' : expected.join(', ')}`, async (t) => {
      const res = await admin('GET', `/api/v1/admin/users/lena/tokens?${query}`)
      t.equal(res.statusCode, 200)
      t.strictSame(names(res), expected)
      t.equal(res.headers['x-total-count'], String(expected.length))
    })
  }

  t.test('page/limit keep the filters in the Link URLs', async (t) => {
    const res = await admin('GET', '/api/v1/admin/users/lena/tokens?state=all&limit=1&page=2')
    t.strictSame(names(res), ['gamma-revoked'])
    t.equal(res.headers['x-total-count'], '4')
    const base = `${PUBLIC_URL}/api/v1/admin/users/lena/tokens?state=all`
    t.equal(res.headers.link, `<${base}&page=1&limit=1>; rel="first", <${base}&page=4&limit=1>; rel="last", <${base}&page=3&limit=1>; rel="next", <${base}&page=1&limit=1>; rel="prev"`)
  })

  t.test('an unknown state, a malformed date and limit=81 are 400', async (t) => {
    for (const query of ['state=dead', 'created_before=yesterday', 'limit=81']) {
      assertProblem(t, await admin('GET', `/api/v1/admin/users/lena/tokens?${query}`), 400, 'FST_ERR_VALIDATION')
    }
  })

  t.test('an unknown user is 404', async (t) => {
    assertProblem(t, await admin('GET', '/api/v1/admin/users/nobody/tokens'), 404, 'TESSERA_USER_NOT_FOUND', 'no user named "nobody"')
  })
})

t.test('creating a token for a user', async (t) => {
  await seedUser(app, 'mona')

  t.test('201 with the plaintext once, no-store, and the admin as created_by', async (t) => {
    const res = await admin('POST', '/api/v1/admin/users/MONA/tokens', { name: 'deploy', scopes: ['write:repository'], audience: ['https://git.example'], expires_in: 3600 })
    t.equal(res.statusCode, 201)
    t.equal(res.headers['cache-control'], 'no-store')
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['audience', 'created_at', 'expires_at', 'id', 'name', 'scopes', 'sha1', 'token', 'token_last_eight'])
    t.match(body, { id: UUID, name: 'deploy', scopes: ['write:repository'], audience: ['https://git.example'], created_at: ISO_DATE, expires_at: ISO_DATE })
    t.equal(body.sha1, body.token)
    // expires_at is computed before the row is written, created_at when it is: allow the gap.
    t.ok(Math.abs(Date.parse(body.expires_at) - Date.parse(body.created_at) - 3_600_000) < 5_000, 'expires an hour after creation')
    const [listed] = (await admin('GET', '/api/v1/admin/users/mona/tokens?q=deploy')).json()
    t.match(listed, { id: body.id, created_by: root.id, owner: { username: 'mona' }, effective_scopes: ['write:repository', 'read:repository'] })
    t.equal(await introspect(body.token), true)
  })

  t.test('an unknown scope is 400 listing the valid scopes, and creates nothing', async (t) => {
    const before = await count('access_tokens')
    const res = await admin('POST', '/api/v1/admin/users/mona/tokens', { name: 'bad', scopes: ['read:tokens', 'read:everything'] })
    assertProblem(t, res, 400, 'TESSERA_INVALID_SCOPE', `unknown scope read:everything; valid scopes are: ${VALID_SCOPES}`)
    t.equal(await count('access_tokens'), before)
  })

  t.test('the admin scope for a user who is not an administrator is 403', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/users/mona/tokens', { name: 'escalate', scopes: ['admin'] }), 403, 'TESSERA_ADMIN_SCOPE_FORBIDDEN', /only administrators/)
  })

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['a missing name', { scopes: ['read:tokens'] }, 'FST_ERR_VALIDATION'],
    ['a blank name', { name: '   ', scopes: ['read:tokens'] }, 'TESSERA_INVALID_TOKEN_NAME'],
    ['no scopes', { name: 'x', scopes: [] }, 'FST_ERR_VALIDATION'],
    ['an unknown property', { name: 'x', scopes: ['read:tokens'], admin: true }, 'FST_ERR_VALIDATION'],
    ['expires_at in the past', { name: 'x', scopes: ['read:tokens'], expires_at: '2020-01-01T00:00:00Z' }, 'TESSERA_EXPIRY_IN_PAST'],
    ['both expires_at and expires_in', { name: 'x', scopes: ['read:tokens'], expires_at: '2099-01-01T00:00:00Z', expires_in: 60 }, 'TESSERA_EXPIRY_CONFLICT'],
    ['a lifetime over the maximum', { name: 'x', scopes: ['read:tokens'], expires_in: 31_536_001 }, 'TESSERA_LIFETIME_TOO_LONG'],
    ['a malformed expires_at', { name: 'x', scopes: ['read:tokens'], expires_at: 'tomorrow' }, 'FST_ERR_VALIDATION']
  ]
  for (const [what, payload, code] of invalid) {
    t.test(`${what} is 400 ${code}`, async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/users/mona/tokens', payload), 400, code)
    })
  }

  t.test('a second live token with the same name is 409', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/users/mona/tokens', { name: 'deploy', scopes: ['read:tokens'] }), 409, 'TESSERA_TOKEN_NAME_TAKEN', /already exists/)
  })

  t.test('for a suspended user it is 409', async (t) => {
    await seedUser(app, 'nora', { suspended: true })
    assertProblem(t, await admin('POST', '/api/v1/admin/users/nora/tokens', { name: 'x', scopes: ['read:tokens'] }), 409, 'TESSERA_USER_SUSPENDED', /nora is suspended/)
    t.equal(await count('access_tokens t join users u on u.id = t.user_id where u.username = ?', ['nora']), 0)
  })

  t.test('for an unknown user it is 404', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/users/nobody/tokens', { name: 'x', scopes: ['read:tokens'] }), 404, 'TESSERA_USER_NOT_FOUND')
  })
})

t.test('revoking a user\'s token', async (t) => {
  await seedUser(app, 'otto')
  await seedUser(app, 'pia')

  t.test('by id: 204, and it introspects inactive at once although it was cached', async (t) => {
    const { token, id } = await seedToken(app, 'otto', { name: 'by-id' })
    t.equal(await introspect(token), true)
    t.ok(isCached(token), 'cached before the revocation')
    const res = await admin('DELETE', `/api/v1/admin/users/otto/tokens/${id.toUpperCase()}`)
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.equal(await introspect(token), false)
    t.match((await admin('GET', '/api/v1/admin/users/otto/tokens?q=by-id')).json(), [{ id, state: 'revoked', revoked_at: ISO_DATE }])
  })

  t.test('by name: 204, and it introspects inactive at once although it was cached', async (t) => {
    const { token } = await seedToken(app, 'otto', { name: 'by name' })
    t.equal(await introspect(token), true)
    t.ok(isCached(token), 'cached before the revocation')
    t.equal((await admin('DELETE', `/api/v1/admin/users/otto/tokens/${encodeURIComponent('by name')}`)).statusCode, 204)
    t.equal(await introspect(token), false)
  })

  t.test('an unknown id or name is 404', async (t) => {
    assertProblem(t, await admin('DELETE', '/api/v1/admin/users/otto/tokens/never-issued'), 404, 'TESSERA_USER_TOKEN_NOT_FOUND', 'otto has no token with id or name "never-issued"')
    assertProblem(t, await admin('DELETE', '/api/v1/admin/users/otto/tokens/01900000-0000-7000-8000-000000000000'), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
  })

  t.test('another user\'s token is 404, and stays active', async (t) => {
    const { token, id } = await seedToken(app, 'pia', { name: 'pias' })
    assertProblem(t, await admin('DELETE', `/api/v1/admin/users/otto/tokens/${id}`), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
    t.equal(await introspect(token), true)
  })

  t.test('a token already revoked is 404', async (t) => {
    const { id } = await seedToken(app, 'otto', { name: 'twice' })
    t.equal((await admin('DELETE', `/api/v1/admin/users/otto/tokens/${id}`)).statusCode, 204)
    assertProblem(t, await admin('DELETE', `/api/v1/admin/users/otto/tokens/${id}`), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
  })

  t.test('a value that is one token\'s id and another token\'s name is 422, and revokes nothing', async (t) => {
    const a = await seedToken(app, 'otto', { name: 'token-a' })
    const b = await seedToken(app, 'otto', { name: a.id })
    assertProblem(t, await admin('DELETE', `/api/v1/admin/users/otto/tokens/${a.id}`), 422, 'TESSERA_AMBIGUOUS_TOKEN_REFERENCE', /ambiguous/)
    t.equal(await introspect(a.token), true)
    t.equal(await introspect(b.token), true)
    // Once B is gone by its own id, A's id is no longer ambiguous.
    t.equal((await admin('DELETE', `/api/v1/admin/users/otto/tokens/${b.id}`)).statusCode, 204)
    t.equal(await introspect(a.token), true)
    t.equal((await admin('DELETE', `/api/v1/admin/users/otto/tokens/${a.id}`)).statusCode, 204)
    t.equal(await introspect(a.token), false)
  })

  t.test('a name carried by an expired token and a live one is 422', async (t) => {
    const old = await seedToken(app, 'otto', { name: 'reused' })
    await sql('update access_tokens set expires_at = ? where id = ?', [new Date(Date.now() - DAY), old.id])
    const fresh = await seedToken(app, 'otto', { name: 'reused' })
    assertProblem(t, await admin('DELETE', '/api/v1/admin/users/otto/tokens/reused'), 422, 'TESSERA_TOKEN_REFERENCE_NAMES_SEVERAL', /names 2 tokens/)
    t.equal((await admin('DELETE', `/api/v1/admin/users/otto/tokens/${fresh.id}`)).statusCode, 204)
  })

  t.test('an unknown user is 404', async (t) => {
    assertProblem(t, await admin('DELETE', '/api/v1/admin/users/nobody/tokens/anything'), 404, 'TESSERA_USER_NOT_FOUND')
  })
})

t.test('looking tokens up by value', async (t) => {
  await seedUser(app, 'quinn')
  const live = await seedToken(app, 'quinn', { name: 'live', scopes: ['write:tokens'], audience: ['https://api.example'] })
  const revoked = await seedToken(app, 'quinn', { name: 'revoked' })
  const expired = await seedToken(app, 'quinn', { name: 'expired' })
  await sql('update access_tokens set revoked_at = now() where id = ?', [revoked.id])
  await sql('update access_tokens set expires_at = ? where id = ?', [new Date(Date.now() - DAY), expired.id])
  const unknown = generateToken(app.config.TOKEN_PREFIX)
  const malformed = `${live.token.slice(0, -1)}${live.token.endsWith('A') ? 'B' : 'A'}`

  t.test('{token}: whose it is, its scopes and state, and that it is active — never the secret or the digest', async (t) => {
    const res = await admin('POST', '/api/v1/admin/tokens/lookup', { token: live.token })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    const results = res.json()
    t.equal(results.length, 1)
    t.match(results[0], {
      token_last_eight: live.token.slice(-8),
      found: true,
      active: true,
      reason: null,
      token: { id: live.id, name: 'live', owner: { username: 'quinn' }, scopes: ['write:tokens'], effective_scopes: ['write:tokens', 'read:tokens'], audience: ['https://api.example'], state: 'active', application: { client_id: 'internal' } }
    })
    t.notOk(res.body.includes(live.token), 'the plaintext is not in the answer')
    t.notOk(res.body.includes(app.services.digester.digest(live.token)), 'the digest is not in the answer')
  })

  t.test('{tokens}: each value reported in input order, unknown and malformed ones included', async (t) => {
    const res = await admin('POST', '/api/v1/admin/tokens/lookup', { tokens: [malformed, revoked.token, unknown, live.token, expired.token, 'short'] })
    t.equal(res.statusCode, 200)
    t.match(res.json(), [
      { token_last_eight: malformed.slice(-8), found: false, active: false, reason: 'malformed', token: null },
      { token_last_eight: revoked.token.slice(-8), found: true, active: false, reason: 'revoked', token: { id: revoked.id, state: 'revoked' } },
      { token_last_eight: unknown.slice(-8), found: false, active: false, reason: 'unknown', token: null },
      { token_last_eight: live.token.slice(-8), found: true, active: true, reason: null, token: { id: live.id } },
      { token_last_eight: expired.token.slice(-8), found: true, active: false, reason: 'expired', token: { id: expired.id, state: 'expired' } },
      { token_last_eight: 'short', found: false, active: false, reason: 'malformed', token: null }
    ])
    t.equal(res.json().length, 6)
    for (const value of [revoked.token, live.token, expired.token]) t.notOk(res.body.includes(value))
  })

  t.test('both token and tokens, or neither, is 400', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/lookup', { token: live.token, tokens: [live.token] }), 400, 'TESSERA_TOKEN_VALUES_SHAPE', /either "token"/)
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/lookup', {}), 400, 'TESSERA_TOKEN_VALUES_SHAPE', /either "token"/)
  })

  t.test('more than 100 values, an empty list or an unknown property is 400', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/lookup', { tokens: Array.from({ length: 101 }, () => unknown) }), 400, 'FST_ERR_VALIDATION', /^body\/tokens /)
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/lookup', { tokens: [] }), 400, 'FST_ERR_VALIDATION')
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/lookup', { token: live.token, value: 'x' }), 400, 'FST_ERR_VALIDATION', /\(value\)/)
  })

  t.test('exactly 100 values are accepted', async (t) => {
    const res = await admin('POST', '/api/v1/admin/tokens/lookup', { tokens: Array.from({ length: 100 }, () => unknown) })
    t.equal(res.statusCode, 200)
    t.equal(res.json().length, 100)
  })
})

t.test('revoking tokens by value', async (t) => {
  await seedUser(app, 'rosa')
  const first = await seedToken(app, 'rosa', { name: 'first' })
  const second = await seedToken(app, 'rosa', { name: 'second' })
  const bystander = await seedToken(app, 'rosa', { name: 'bystander' })
  const earlier = await seedToken(app, 'rosa', { name: 'earlier' })
  t.equal((await admin('DELETE', `/api/v1/admin/users/rosa/tokens/${earlier.id}`)).statusCode, 204)
  const unknown = generateToken(app.config.TOKEN_PREFIX)

  t.test('each value is reported revoked, already_revoked, unknown or malformed, and the revoked ones are dead at once', async (t) => {
    for (const { token } of [first, second, bystander]) t.equal(await introspect(token), true)
    t.ok(isCached(first.token) && isCached(second.token), 'cached before the revocation')

    const res = await admin('POST', '/api/v1/admin/tokens/revoke', { tokens: [first.token, unknown, earlier.token, 'not-a-token', second.token, first.token] })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), [
      { token_last_eight: first.token.slice(-8), result: 'revoked', token_id: first.id, owner: 'rosa' },
      { token_last_eight: unknown.slice(-8), result: 'unknown', token_id: null, owner: null },
      { token_last_eight: earlier.token.slice(-8), result: 'already_revoked', token_id: earlier.id, owner: 'rosa' },
      { token_last_eight: '-a-token', result: 'malformed', token_id: null, owner: null },
      { token_last_eight: second.token.slice(-8), result: 'revoked', token_id: second.id, owner: 'rosa' },
      { token_last_eight: first.token.slice(-8), result: 'already_revoked', token_id: first.id, owner: 'rosa' }
    ])
    t.equal(await introspect(first.token), false)
    t.equal(await introspect(second.token), false)
    t.equal(await introspect(bystander.token), true, 'other tokens are untouched')
    t.equal(await count('audit_events where action = \'token.revoked\' and target_id in (?, ?)', [first.id, second.id]), 2, 'one event per revoked token')
  })

  t.test('{token} revokes one value', async (t) => {
    const res = await admin('POST', '/api/v1/admin/tokens/revoke', { token: bystander.token })
    t.strictSame(res.json(), [{ token_last_eight: bystander.token.slice(-8), result: 'revoked', token_id: bystander.id, owner: 'rosa' }])
    t.equal(await introspect(bystander.token), false)
  })

  t.test('both token and tokens, neither, or more than 100 values is 400', async (t) => {
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/revoke', { token: unknown, tokens: [unknown] }), 400, 'TESSERA_TOKEN_VALUES_SHAPE')
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/revoke', {}), 400, 'TESSERA_TOKEN_VALUES_SHAPE')
    assertProblem(t, await admin('POST', '/api/v1/admin/tokens/revoke', { tokens: Array.from({ length: 101 }, () => unknown) }), 400, 'FST_ERR_VALIDATION')
  })
})

t.test('an expired JWT access token is found and expired, not malformed (issue 12); a broken signature stays malformed', async (t) => {
  const service = await seedApplication(app, ['read:repository'], { tokenFormat: 'jwt' })
  const body = form({ grant_type: 'client_credentials', scope: 'read:repository' })
  const granted = await app.inject({ method: 'POST', url: '/oauth/token', payload: body.payload, headers: { ...body.headers, authorization: basic(service.clientId, service.clientSecret) } })
  t.equal(granted.statusCode, 200)
  const live = granted.json().access_token as string
  // The same claims signed by the same key, an hour past their expiry, in place of the row's
  // token: a JWT of ours that is really expired, as a scanner finds one long after the leak.
  const claims = JSON.parse(Buffer.from(live.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
  const past = Math.floor(Date.now() / 1000) - 3600
  const expired = app.services.keys.sign(JWT_TYPES.accessToken, { ...claims, iat: past - 3600, nbf: past - 3600, exp: past })
  await sql('update access_tokens set digest = ?, last_eight = ?, expires_at = ? where id = ?', [app.services.digester.digest(expired), expired.slice(-8), new Date(past * 1000), claims.jti])
  t.equal(app.services.keys.check(expired, JWT_TYPES.accessToken), 'invalid', 'the signature check that accepts tokens refuses it')
  t.equal(app.services.keys.identify(expired, JWT_TYPES.accessToken), 'valid', 'identification ignores expiry')
  // One character in the middle of the signature changed: the signature no longer verifies.
  const at = expired.length - 20
  const broken = `${expired.slice(0, at)}${expired[at] === 'A' ? 'B' : 'A'}${expired.slice(at + 1)}`
  t.equal(app.services.keys.identify(broken, JWT_TYPES.accessToken), 'invalid')

  const lookup = await admin('POST', '/api/v1/admin/tokens/lookup', { tokens: [expired, broken] })
  t.equal(lookup.statusCode, 200)
  t.match(lookup.json(), [
    { token_last_eight: expired.slice(-8), found: true, active: false, reason: 'expired', token: { id: claims.jti, state: 'expired', owner: null, application: { client_id: service.clientId } } },
    { token_last_eight: broken.slice(-8), found: false, active: false, reason: 'malformed', token: null }
  ])
  t.equal(lookup.json().length, 2)

  const revoked = await admin('POST', '/api/v1/admin/tokens/revoke', { tokens: [expired, broken] })
  t.strictSame(revoked.json(), [
    { token_last_eight: expired.slice(-8), result: 'revoked', token_id: claims.jti, owner: null },
    { token_last_eight: broken.slice(-8), result: 'malformed', token_id: null, owner: null }
  ])
  t.equal(await count('access_tokens where id = ? and revoked_at is not null', [claims.jti]), 1, 'the expired JWT\'s row is revoked')
})
