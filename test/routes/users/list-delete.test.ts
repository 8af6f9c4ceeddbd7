import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { assertProblem, basic, bearer, build, introspect, seedApplication, seedToken, seedUser } from '../../helper.js'

const PASSWORD = 'correct horse battery'
const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'
const BASE = 'http://localhost:80'

interface View { id: string, name: string, state: string, [field: string]: unknown }

async function list (app: FastifyInstance, username: string, authorization: string, query = ''): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url: `/api/v1/users/${username}/tokens${query}`, headers: { authorization } })
}

async function remove (app: FastifyInstance, username: string, reference: string, authorization: string): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'DELETE', url: `/api/v1/users/${username}/tokens/${encodeURIComponent(reference)}`, headers: { authorization } })
}

// The password rate limits are raised so that the number of cases cannot trip them; they have their own test.
const app = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '1000', RATE_LIMIT_PASSWORD_PER_IP: '1000' })
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)
const resourceServer = await seedApplication(app, ['introspect'])

async function isActive (token: string): Promise<boolean> {
  return (await introspect(app, token, basic(resourceServer.clientId, resourceServer.clientSecret))).active as boolean
}

async function idsOf (username: string): Promise<string[]> {
  const rows = await sql<{ id: string }>('select t.id from access_tokens t join users u on u.id = t.user_id where u.username = ? and t.revoked_at is null order by t.id desc', [username])
  return rows.map((row) => row.id)
}

await seedUser(app, 'carol')
await seedUser(app, 'dave')
const carolReader = await seedToken(app, 'carol', { name: 'reader', scopes: ['read:tokens'] })
for (let i = 1; i < 8; i++) await seedToken(app, 'carol', { name: `t${i}` })
const carolIds = await idsOf('carol')
const carolBasic = basic('carol', PASSWORD)
const davesToken = await seedToken(app, 'dave', { name: 'dave-admin-of-nothing', scopes: ['read:tokens', 'write:tokens'] })

t.test('listing, Forgejo style', async (t) => {
  t.test('page and limit walk every token newest first, with X-Total-Count and first/prev/next/last links', async (t) => {
    const link = (page: number): string => `${BASE}/api/v1/users/carol/tokens?page=${page}&limit=3`
    const expected = [
      { ids: carolIds.slice(0, 3), link: `<${link(1)}>; rel="first", <${link(3)}>; rel="last", <${link(2)}>; rel="next"` },
      { ids: carolIds.slice(3, 6), link: `<${link(1)}>; rel="first", <${link(3)}>; rel="last", <${link(3)}>; rel="next", <${link(1)}>; rel="prev"` },
      { ids: carolIds.slice(6, 8), link: `<${link(1)}>; rel="first", <${link(3)}>; rel="last", <${link(2)}>; rel="prev"` }
    ]
    t.equal(carolIds.length, 8)
    for (const [index, page] of expected.entries()) {
      const res = await list(app, 'carol', carolBasic, `?page=${index + 1}&limit=3`)
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-total-count'], '8')
      t.strictSame((res.json() as View[]).map((view) => view.id), page.ids, `page ${index + 1}`)
      t.equal(res.headers.link, page.link, `links of page ${index + 1}`)
    }
  })

  t.test('without page and limit: the first 20', async (t) => {
    const res = await list(app, 'carol', carolBasic)
    t.strictSame((res.json() as View[]).map((view) => view.id), carolIds)
    t.equal(res.headers['x-total-count'], '8')
    t.equal(res.headers.link, `<${BASE}/api/v1/users/carol/tokens?page=1&limit=20>; rel="first", <${BASE}/api/v1/users/carol/tokens?page=1&limit=20>; rel="last"`)
  })

  t.test('a page past the end is empty and links back to the last page', async (t) => {
    const res = await list(app, 'carol', carolBasic, '?page=9&limit=3')
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), [])
    t.equal(res.headers['x-total-count'], '8')
    t.match(res.headers.link, `<${BASE}/api/v1/users/carol/tokens?page=3&limit=3>; rel="prev"`)
  })

  t.test('page and limit out of range are a 400', async (t) => {
    assertProblem(t, await list(app, 'carol', carolBasic, '?page=0'), 400, 'FST_ERR_VALIDATION', /querystring\/page must be >= 1/)
    assertProblem(t, await list(app, 'carol', carolBasic, '?limit=0'), 400, 'FST_ERR_VALIDATION', /querystring\/limit must be >= 1/)
    assertProblem(t, await list(app, 'carol', carolBasic, '?limit=81'), 400, 'FST_ERR_VALIDATION', /querystring\/limit must be <= 80/)
    assertProblem(t, await list(app, 'carol', carolBasic, '?page=two'), 400, 'FST_ERR_VALIDATION', /querystring\/page must be integer/)
  })

  t.test('the user\'s own token with read:tokens lists the same as Basic', async (t) => {
    const withBasic = await list(app, 'carol', carolBasic, '?limit=5')
    const withToken = await list(app, 'carol', bearer(carolReader.token), '?limit=5')
    t.equal(withToken.statusCode, 200)
    t.strictSame(withToken.json(), withBasic.json())
    t.equal(withToken.headers['x-total-count'], '8')
    t.equal(withToken.headers.link, withBasic.headers.link)
    t.notOk(withToken.body.includes(carolReader.token), 'never a secret')
  })

  t.test('the username is matched without regard to case', async (t) => {
    t.equal((await list(app, 'CAROL', carolBasic)).statusCode, 200)
    t.equal((await list(app, 'Carol', bearer(carolReader.token))).statusCode, 200)
  })

  t.test('another user\'s token is a 403', async (t) => {
    assertProblem(t, await list(app, 'carol', bearer(davesToken.token)), 403, 'TESSERA_TOKEN_OF_ANOTHER_USER', 'the token does not belong to carol')
  })

  t.test('another user\'s password is a 403', async (t) => {
    assertProblem(t, await list(app, 'carol', basic('dave', PASSWORD)), 403, 'TESSERA_CREDENTIALS_OF_ANOTHER_USER', 'the credentials are not those of carol')
  })

  t.test('a wrong password is a 401 with a Basic challenge', async (t) => {
    const res = await list(app, 'carol', basic('carol', 'wrong horse'))
    assertProblem(t, res, 401, 'TESSERA_INVALID_PASSWORD', 'invalid username or password')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('no credentials is a 401', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/carol/tokens' })
    assertProblem(t, res, 401, 'TESSERA_PASSWORD_REQUIRED')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a token without read:tokens is a 403; a dead one a 401', async (t) => {
    const repoOnly = await seedToken(app, 'carol', { name: 'repo-only', scopes: ['read:repository'] })
    assertProblem(t, await list(app, 'carol', bearer(repoOnly.token)), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the read:tokens scope')
    await sql('update access_tokens set revoked_at = now() where id = ?', [repoOnly.id])
    const garbled = `${carolReader.token.slice(0, -4)}AAAA`
    assertProblem(t, await list(app, 'carol', bearer(garbled)), 401, 'TESSERA_INVALID_TOKEN', 'the access token is invalid, expired or revoked')
  })
})

t.test('deleting, by id or else by name', async (t) => {
  await seedUser(app, 'erin')
  const writer = await seedToken(app, 'erin', { name: 'writer', scopes: ['write:tokens'] })
  const reader = await seedToken(app, 'erin', { name: 'reader', scopes: ['read:tokens'] })
  const erinBasic = basic('erin', PASSWORD)

  t.test('by id: 204, and the token is inactive right after, even when cached', async (t) => {
    const target = await seedToken(app, 'erin', { name: 'by-id' })
    t.equal(await isActive(target.token), true, 'active, and now cached')
    const res = await remove(app, 'erin', target.id, erinBasic)
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.equal(await isActive(target.token), false)
    const listed = (await list(app, 'erin', erinBasic)).json() as View[]
    t.notOk(listed.some((view) => view.id === target.id), 'gone from the default listing')
    const revoked = (await list(app, 'erin', erinBasic, '?state=revoked')).json() as View[]
    t.strictSame(revoked.map((view) => [view.id, view.state]), [[target.id, 'revoked']], 'shown with state=revoked')
  })

  t.test('by name, with the owner\'s write:tokens token', async (t) => {
    const target = await seedToken(app, 'erin', { name: 'laptop' })
    t.equal(await isActive(target.token), true)
    const res = await remove(app, 'erin', 'laptop', bearer(writer.token))
    t.equal(res.statusCode, 204)
    t.equal(await isActive(target.token), false)
  })

  t.test('an id in upper case still names the token', async (t) => {
    const target = await seedToken(app, 'erin', { name: 'shouting' })
    t.equal((await remove(app, 'erin', target.id.toUpperCase(), erinBasic)).statusCode, 204)
    t.equal(await isActive(target.token), false)
  })

  t.test('an unknown id or name is a 404, and so is a token already revoked', async (t) => {
    assertProblem(t, await remove(app, 'erin', 'no-such-token', erinBasic), 404, 'TESSERA_USER_TOKEN_NOT_FOUND', 'erin has no token with id or name "no-such-token"')
    assertProblem(t, await remove(app, 'erin', '0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee', erinBasic), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
    const once = await seedToken(app, 'erin', { name: 'once' })
    t.equal((await remove(app, 'erin', once.id, erinBasic)).statusCode, 204)
    assertProblem(t, await remove(app, 'erin', once.id, erinBasic), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
  })

  t.test('another user\'s token id is a 404 on one\'s own path, and leaves it alone', async (t) => {
    assertProblem(t, await remove(app, 'erin', davesToken.id, erinBasic), 404, 'TESSERA_USER_TOKEN_NOT_FOUND')
    t.equal(await isActive(davesToken.token), true)
  })

  t.test('a value that is one token\'s id and another token\'s name is a 422; neither is touched', async (t) => {
    const a = await seedToken(app, 'erin', { name: 'token-a' })
    const b = await seedToken(app, 'erin', { name: a.id })
    assertProblem(t, await remove(app, 'erin', a.id, erinBasic), 422, 'TESSERA_AMBIGUOUS_TOKEN_REFERENCE', `"${a.id}" is ambiguous: it is one token's id and another token's name; use the id of the token you mean`)
    t.equal(await isActive(a.token), true)
    t.equal(await isActive(b.token), true)
    t.equal((await remove(app, 'erin', b.id, erinBasic)).statusCode, 204, 'b by its own id')
    t.equal((await remove(app, 'erin', a.id, erinBasic)).statusCode, 204, 'then a\'s id is no longer ambiguous')
    t.equal(await isActive(a.token), false)
  })

  t.test('a name shared by a live and an expired token is a 422', async (t) => {
    const old = await seedToken(app, 'erin', { name: 'ci', expires_in: 60 })
    await sql('update access_tokens set expires_at = now() - interval \'1 minute\' where id = ?', [old.id])
    const live = await seedToken(app, 'erin', { name: 'ci' })
    assertProblem(t, await remove(app, 'erin', 'ci', erinBasic), 422, 'TESSERA_TOKEN_REFERENCE_NAMES_SEVERAL', '"ci" names 2 tokens (some expired); delete by id instead')
    t.equal(await isActive(live.token), true)
  })

  t.test('a token without write:tokens, another user\'s token, or no credentials cannot delete', async (t) => {
    const target = await seedToken(app, 'erin', { name: 'kept' })
    assertProblem(t, await remove(app, 'erin', target.id, bearer(reader.token)), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the write:tokens scope')
    assertProblem(t, await remove(app, 'erin', target.id, bearer(davesToken.token)), 403, 'TESSERA_TOKEN_OF_ANOTHER_USER', 'the token does not belong to erin')
    assertProblem(t, await remove(app, 'erin', target.id, basic('erin', 'wrong horse')), 401, 'TESSERA_INVALID_PASSWORD')
    const anonymous = await app.inject({ method: 'DELETE', url: `/api/v1/users/erin/tokens/${target.id}` })
    assertProblem(t, anonymous, 401, 'TESSERA_PASSWORD_REQUIRED')
    t.equal(await isActive(target.token), true)
  })

  t.test('a token may delete itself', async (t) => {
    const self = await seedToken(app, 'erin', { name: 'self', scopes: ['write:tokens'] })
    t.equal((await remove(app, 'erin', 'self', bearer(self.token))).statusCode, 204)
    assertProblem(t, await list(app, 'erin', bearer(self.token)), 401, 'TESSERA_INVALID_TOKEN')
  })
})

t.test('with BASIC_AUTH_ENABLED=false, Basic is refused but the owner\'s token still works', async (t) => {
  const sso = await build(t, { BASIC_AUTH_ENABLED: 'false' })
  await seedUser(sso, 'gus')
  const own = await seedToken(sso, 'gus', { name: 'own', scopes: ['read:tokens', 'write:tokens'] })
  const victim = await seedToken(sso, 'gus', { name: 'victim' })
  const basicDisabled = 'Basic authentication is disabled on this server; an administrator creates tokens through the admin API'
  assertProblem(t, await list(sso, 'gus', basic('gus', PASSWORD)), 403, 'TESSERA_BASIC_AUTH_DISABLED', basicDisabled)
  assertProblem(t, await remove(sso, 'gus', 'victim', basic('gus', PASSWORD)), 403, 'TESSERA_BASIC_AUTH_DISABLED', basicDisabled)
  const listed = await list(sso, 'gus', bearer(own.token))
  t.equal(listed.statusCode, 200)
  t.strictSame((listed.json() as View[]).map((view) => view.name), ['victim', 'own'])
  t.equal((await remove(sso, 'gus', 'victim', bearer(own.token))).statusCode, 204)
  const after = await list(sso, 'gus', bearer(own.token))
  t.strictSame((after.json() as View[]).map((view) => view.id), [own.id])
  t.not(victim.id, own.id)
  // Regression: without credentials the answer was the 403 about Basic auth; it asks for a token.
  const anonymous = await sso.inject({ method: 'GET', url: '/api/v1/users/gus/tokens' })
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="tessera"')
  t.equal(anonymous.json().detail, "this route needs one of gus's tokens with the read:tokens scope in the Authorization header")
})

t.test('password attempts are rate-limited; token use is not counted', async (t) => {
  const limited = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '3', RATE_LIMIT_PASSWORD_PER_IP: '100' })
  await seedUser(limited, 'hal')
  const own = await seedToken(limited, 'hal', { name: 'own', scopes: ['read:tokens'] })
  for (let i = 0; i < 5; i++) t.equal((await list(limited, 'hal', bearer(own.token))).statusCode, 200, `token request ${i + 1}`)
  for (let i = 0; i < 3; i++) t.equal((await list(limited, 'hal', basic('hal', PASSWORD))).statusCode, 200, `password request ${i + 1}`)
  const refused = await list(limited, 'hal', basic('hal', PASSWORD))
  t.equal(refused.statusCode, 429, 'the fourth password attempt in the window')
  t.equal((await list(limited, 'hal', bearer(own.token))).statusCode, 200, 'the token still works')
})
