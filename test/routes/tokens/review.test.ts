import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { AuditEvent } from '../../../src/entities/audit-event.js'
import { assertProblem, basic, bearer, build, introspect, seedApplication, seedToken, seedUser } from '../../helper.js'

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const READ = ['read:tokens']
const READ_WRITE = ['read:tokens', 'write:tokens']
/** Every field of a TokenView (schemas/listing.ts), the documented shape of a listing entry. */
const VIEW_FIELDS = [
  'application', 'audience', 'created_at', 'created_by', 'effective_scopes', 'expires_at', 'id', 'last_used',
  'last_used_at', 'last_used_ip', 'name', 'owner', 'revoked_at', 'rotated_from', 'scope', 'scopes', 'state', 'token_last_eight'
]

interface View {
  id: string
  name: string
  state: string
  revoked_at: string | null
  [field: string]: unknown
}

interface Page {
  res: LightMyRequestResponse
  ids: string[]
  links: Record<string, string>
}

/** Parses an RFC 8288 Link header into { rel: url }; throws on anything else. */
function parseLinks (header: string | string[] | number | undefined): Record<string, string> {
  const links: Record<string, string> = {}
  if (header === undefined) return links
  if (typeof header !== 'string') throw new Error(`unexpected Link header: ${String(header)}`)
  for (const part of header.split(', ')) {
    const match = /^<([^>]+)>; rel="([a-z]+)"$/.exec(part)
    if (match === null) throw new Error(`unparsable Link part: ${part}`)
    links[match[2] as string] = match[1] as string
  }
  return links
}

async function get (app: FastifyInstance, url: string, token: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url, headers: { authorization: bearer(token), ...headers } })
}

async function post (app: FastifyInstance, url: string, token: string | null, payload?: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url,
    headers: token === null ? {} : { authorization: bearer(token) },
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
  })
}

async function fetchPage (app: FastifyInstance, path: string, token: string): Promise<Page> {
  const res = await get(app, path, token)
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${res.body}`)
  return { res, ids: (res.json() as View[]).map((view) => view.id), links: parseLinks(res.headers.link) }
}

/** Follows an absolute Link URL exactly as given: its path and query, through app.inject. */
async function follow (app: FastifyInstance, url: string | undefined, token: string): Promise<Page> {
  if (url === undefined) throw new Error('no such link')
  const parsed = new URL(url)
  return await fetchPage(app, `${parsed.pathname}${parsed.search}`, token)
}

function sortedDescending (ids: string[]): boolean {
  return ids.every((id, i) => i === 0 || (ids[i - 1] as string) > id)
}

const app = await build(t)
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)
const resourceServer = await seedApplication(app, ['introspect'])

const introspectAsServer = async (token: string): Promise<Record<string, unknown>> => await introspect(app, token, basic(resourceServer.clientId, resourceServer.clientSecret))

async function idsOf (username: string): Promise<string[]> {
  const rows = await sql<{ id: string }>('select t.id from access_tokens t join users u on u.id = t.user_id where u.username = ? order by t.id desc', [username])
  return rows.map((row) => row.id)
}

/** A user with `count` tokens, the first of them a `read:tokens` token the walks use. */
async function userWithTokens (username: string, count: number): Promise<string> {
  await seedUser(app, username)
  const { token } = await seedToken(app, username, { name: 'reader', scopes: READ })
  for (let i = 1; i < count; i++) await seedToken(app, username, { name: `bulk-${i}`, scopes: ['read:repository'] })
  return token
}

const walker = await userWithTokens('walker', 48)
const walkerIds = await idsOf('walker')

t.test('walking the Link headers', async (t) => {
  t.test('next pages go back in time through every token once, newest first; prev pages come back the same way', async (t) => {
    t.equal(walkerIds.length, 48)
    const pages: Page[] = [await fetchPage(app, '/api/v1/tokens?limit=10', walker)]
    for (let guard = 0; guard < 10; guard++) {
      const page = await follow(app, pages[pages.length - 1]?.links.next, walker)
      if (page.ids.length === 0) {
        t.equal(page.res.headers.link, undefined, 'the empty page after the last one has no Link header')
        break
      }
      pages.push(page)
    }
    t.strictSame(pages.map((page) => page.ids.length), [10, 10, 10, 10, 8], 'five pages of at most 10')
    for (const page of pages) t.strictSame(Object.keys(page.links).sort(), ['next', 'prev'], 'every non-empty page links both ways')
    const forward = pages.flatMap((page) => page.ids)
    t.strictSame(forward, walkerIds, 'newest first, no duplicate, no gap')

    const back: Page[] = [pages[pages.length - 1] as Page]
    for (let guard = 0; guard < 10; guard++) {
      const page = await follow(app, back[0]?.links.prev, walker)
      if (page.ids.length === 0) {
        t.equal(page.res.headers.link, undefined, 'the empty page above the newest token has no Link header')
        break
      }
      back.unshift(page)
    }
    t.strictSame(back.map((page) => page.ids), pages.map((page) => page.ids), 'prev pages are the same pages, walked upwards')
  })

  t.test('without a limit a page holds 20 tokens', async (t) => {
    const page = await fetchPage(app, '/api/v1/tokens', walker)
    t.strictSame(page.ids, walkerIds.slice(0, 20))
    const next = new URL(page.links.next as string)
    t.equal(next.searchParams.get('max_id'), walkerIds[19])
    t.equal(next.searchParams.get('limit'), '20')
    const second = await follow(app, page.links.next, walker)
    t.strictSame(second.ids, walkerIds.slice(20, 40))
  })

  t.test('since_id gives the newest tokens above an id; min_id the ones right after it', async (t) => {
    const boundary = walkerIds[30] as string
    t.strictSame((await fetchPage(app, `/api/v1/tokens?since_id=${boundary}&limit=5`, walker)).ids, walkerIds.slice(0, 5))
    t.strictSame((await fetchPage(app, `/api/v1/tokens?min_id=${boundary}&limit=5`, walker)).ids, walkerIds.slice(25, 30))
    t.strictSame((await fetchPage(app, `/api/v1/tokens?since_id=${boundary}&limit=80`, walker)).ids, walkerIds.slice(0, 30), 'never the boundary itself')
    t.strictSame((await fetchPage(app, `/api/v1/tokens?min_id=${boundary}&limit=80`, walker)).ids, walkerIds.slice(0, 30))
    t.strictSame((await fetchPage(app, `/api/v1/tokens?max_id=${boundary}&limit=3`, walker)).ids, walkerIds.slice(31, 34), 'max_id gives the ones right below')
    t.strictSame((await fetchPage(app, `/api/v1/tokens?max_id=${walkerIds[5] as string}&since_id=${walkerIds[10] as string}`, walker)).ids, walkerIds.slice(6, 10), 'max_id and since_id bound both sides')
    t.strictSame((await fetchPage(app, `/api/v1/tokens?min_id=${walkerIds[0] as string}`, walker)).ids, [], 'nothing is newer than the newest')

    const page = await fetchPage(app, `/api/v1/tokens?min_id=${boundary}&limit=5`, walker)
    t.equal(new URL(page.links.next as string).searchParams.get('max_id'), walkerIds[29])
    t.equal(new URL(page.links.prev as string).searchParams.get('min_id'), walkerIds[25])
    t.equal(new URL(page.links.prev as string).searchParams.has('since_id'), false, 'the paging parameters of the request are replaced')
  })

  t.test('limit 1 and 80 are the bounds', async (t) => {
    t.strictSame((await fetchPage(app, '/api/v1/tokens?limit=1', walker)).ids, walkerIds.slice(0, 1))
    t.strictSame((await fetchPage(app, '/api/v1/tokens?limit=80', walker)).ids, walkerIds)
  })

  t.test('a limit out of range, not an integer, or a malformed id is a 400', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['limit=0', /querystring\/limit must be >= 1/],
      ['limit=81', /querystring\/limit must be <= 80/],
      ['limit=1.5', /querystring\/limit must be integer/],
      ['limit=ten', /querystring\/limit must be integer/],
      ['limit=', /querystring\/limit must be integer/],
      ['max_id=not-an-id', /querystring\/max_id must match format "uuid"/],
      ['since_id=12345', /querystring\/since_id must match format "uuid"/],
      [`min_id=${(walkerIds[0] as string).slice(0, -1)}`, /querystring\/min_id must match format "uuid"/],
      ['state=dead', /querystring\/state/]
    ]
    for (const [query, detail] of cases) {
      t.test(query, async (t) => { assertProblem(t, await get(app, `/api/v1/tokens?${query}`, walker), 400, 'FST_ERR_VALIDATION', detail) })
    }
  })

  t.test('an empty page has no Link header', async (t) => {
    const res = await get(app, `/api/v1/tokens?max_id=${walkerIds[walkerIds.length - 1] as string}`, walker)
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), [])
    t.equal(res.headers.link, undefined)
  })

  t.test('the Link URLs are absolute on the request\'s host and keep the other query parameters', async (t) => {
    const res = await get(app, '/api/v1/tokens?state=all&limit=2', walker, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' })
    t.equal(res.headers.link,
      `<http://localhost:80/api/v1/tokens?state=all&max_id=${walkerIds[1] as string}&limit=2>; rel="next", ` +
      `<http://localhost:80/api/v1/tokens?state=all&min_id=${walkerIds[0] as string}&limit=2>; rel="prev"`,
      'forwarded headers are ignored unless TRUST_PROXY is set')
  })

  t.test('tokens created between pages appear only when walking prev back past the top', async (t) => {
    // Last of the walks: it adds tokens to walker's.
    const original = await idsOf('walker')
    t.strictSame(original, walkerIds)
    const created: string[] = []
    const addToken = async (): Promise<void> => { created.push((await seedToken(app, 'walker', { name: `late-${created.length}` })).id) }

    const pages: Page[] = [await fetchPage(app, '/api/v1/tokens?limit=10', walker)]
    for (let guard = 0; guard < 10; guard++) {
      await addToken()
      const page = await follow(app, pages[pages.length - 1]?.links.next, walker)
      if (page.ids.length === 0) break
      pages.push(page)
    }
    t.strictSame(pages.flatMap((page) => page.ids), original, 'the walk back in time is exactly the tokens that existed when it began')

    let top = pages[pages.length - 1] as Page
    const upwards: string[][] = [top.ids]
    for (let guard = 0; guard < 10; guard++) {
      const page = await follow(app, top.links.prev, walker)
      if (page.ids.length === 0) {
        t.equal(page.res.headers.link, undefined, 'the walk ends on an empty page without a Link header')
        break
      }
      const newest = page.ids[0] as string
      if (newest <= (original[0] as string)) {
        t.ok(page.ids.every((id) => original.includes(id)), 'inside the walked range only tokens that were there before')
        await addToken()
      }
      upwards.unshift(page.ids)
      top = page
    }
    t.equal(created.length, 9, 'one token before each of the five next links and the four prev links inside the range')
    const all = await idsOf('walker')
    t.strictSame(upwards.flat(), all, 'walking prev to the top yields every token, the new ones above the old')
    t.strictSame(all.slice(0, created.length), [...created].reverse(), 'the new tokens are the newest')
    t.ok(upwards.every(sortedDescending), 'each page is newest first')
  })
})

t.test('the Link URLs use PUBLIC_URL, base path included, when it is configured', async (t) => {
  const configured = await build(t, { PUBLIC_URL: 'https://tessera.example.com/base' })
  await seedUser(configured, 'erin')
  const { token } = await seedToken(configured, 'erin', { name: 'reader', scopes: READ })
  for (let i = 0; i < 4; i++) await seedToken(configured, 'erin', { name: `t${i}` })
  const res = await get(configured, '/api/v1/tokens?limit=2', token, { host: 'internal:3000', 'x-forwarded-host': 'evil.example' })
  const links = parseLinks(res.headers.link)
  t.strictSame(Object.keys(links), ['next', 'prev'])
  t.match(links.next, /^https:\/\/tessera\.example\.com\/base\/api\/v1\/tokens\?max_id=[0-9a-f-]{36}&limit=2$/)
  t.match(links.prev, /^https:\/\/tessera\.example\.com\/base\/api\/v1\/tokens\?min_id=[0-9a-f-]{36}&limit=2$/)

  // Behind the proxy the base path is stripped before the request reaches Tessera.
  const ids: string[] = (res.json() as View[]).map((view) => view.id)
  let next = links.next
  while (next !== undefined) {
    const url = new URL(next)
    t.equal(url.origin, 'https://tessera.example.com')
    const page = await get(configured, `${url.pathname.replace(/^\/base/, '')}${url.search}`, token)
    ids.push(...(page.json() as View[]).map((view) => view.id))
    next = parseLinks(page.headers.link).next
  }
  const rows = await configured.orm.em.getConnection().execute<Array<{ id: string }>>('select id from access_tokens order by id desc')
  t.strictSame(ids, rows.map((row) => row.id))
})

t.test('behind a trusted proxy the Link URLs use X-Forwarded-Proto and X-Forwarded-Host', async (t) => {
  const proxied = await build(t, { TRUST_PROXY: 'true' })
  await seedUser(proxied, 'frank')
  const { token, id } = await seedToken(proxied, 'frank', { name: 'reader', scopes: READ })
  const res = await get(proxied, '/api/v1/tokens', token, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'tokens.example.org' })
  t.equal(res.headers.link,
    `<https://tokens.example.org/api/v1/tokens?max_id=${id}&limit=20>; rel="next", <https://tokens.example.org/api/v1/tokens?min_id=${id}&limit=20>; rel="prev"`)
  const direct = await get(proxied, '/api/v1/tokens', token, { host: 'tessera.internal:8080' })
  t.match(direct.headers.link, /^<http:\/\/tessera\.internal:8080\/api\/v1\/tokens\?max_id=/, 'without forwarded headers, the Host header')
})

t.test('entries show exactly the documented fields, never the secret or its digest', async (t) => {
  await seedUser(app, 'gina')
  const reader = await seedToken(app, 'gina', { name: 'reader', scopes: READ })
  const before = Date.now()
  const deploy = await seedToken(app, 'gina', { name: 'deploy', scopes: ['write:repository'], audience: ['https://git.example'], expires_in: 3600 })
  const res = await get(app, '/api/v1/tokens', reader.token)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const views = res.json() as View[]
  t.strictSame(views.map((view) => view.name), ['deploy', 'reader'])
  const view = views[0] as View
  t.strictSame(Object.keys(view).sort(), VIEW_FIELDS)
  const [internal] = await sql<{ name: string, client_id: string }>('select name, client_id from applications where id = (select application_id from access_tokens where id = ?)', [deploy.id])
  const [gina] = await sql<{ id: string }>('select id from users where username = ?', ['gina'])
  t.match(view, {
    id: deploy.id,
    name: 'deploy',
    scopes: ['write:repository'],
    scope: 'write:repository',
    effective_scopes: ['write:repository', 'read:repository'],
    audience: ['https://git.example'],
    application: { name: internal?.name, client_id: internal?.client_id },
    owner: { id: gina?.id, username: 'gina' },
    token_last_eight: deploy.token.slice(-8),
    state: 'active',
    created_at: ISO_DATE,
    created_by: null,
    expires_at: ISO_DATE,
    revoked_at: null,
    last_used: null,
    last_used_at: null,
    last_used_ip: null,
    rotated_from: null
  })
  t.strictSame(Object.keys(view.application as object).sort(), ['client_id', 'name'])
  const expiresIn = Date.parse(view.expires_at as string) - Date.parse(view.created_at as string)
  t.equal(expiresIn, 3600_000, 'expires_at is created_at plus the lifetime')
  t.ok(Date.parse(view.created_at as string) >= before - 1000)
  const [row] = await sql<{ digest: string }>('select digest from access_tokens where id = ?', [deploy.id])
  t.notOk(res.body.includes(deploy.token), 'no plaintext')
  t.notOk(res.body.includes(row?.digest as string), 'no digest')
  t.notOk(res.body.includes(reader.token), 'not even the caller\'s own')

  const one = await get(app, `/api/v1/tokens/${deploy.id}`, reader.token)
  t.equal(one.statusCode, 200)
  t.strictSame(one.json(), view, 'GET /api/v1/tokens/{id} answers the same view')
  t.strictSame((await get(app, `/api/v1/tokens/${deploy.id.toUpperCase()}`, reader.token)).json(), view, 'the id is not case-sensitive')
})

t.test('another user\'s token id is a 404 on show, invalidate and rotate, like an unknown one', async (t) => {
  await seedUser(app, 'hank')
  await seedUser(app, 'ivy')
  const hank = await seedToken(app, 'hank', { name: 'manager', scopes: READ_WRITE })
  const ivys = await seedToken(app, 'ivy', { name: 'victim', scopes: READ_WRITE })
  await introspectAsServer(ivys.token)
  const unknown = '0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee'
  for (const id of [ivys.id, unknown]) {
    assertProblem(t, await get(app, `/api/v1/tokens/${id}`, hank.token), 404, 'TESSERA_TOKEN_NOT_FOUND', `you have no token with id ${id}`)
    assertProblem(t, await post(app, `/api/v1/tokens/${id}/invalidate`, hank.token), 404, 'TESSERA_TOKEN_NOT_FOUND', `you have no token with id ${id}`)
    assertProblem(t, await post(app, `/api/v1/tokens/${id}/rotate`, hank.token, {}), 404, 'TESSERA_TOKEN_NOT_FOUND', `you have no token with id ${id}`)
  }
  t.strictSame(await sql('select revoked_at from access_tokens where id = ?', [ivys.id]), [{ revoked_at: null }], 'ivy\'s token is untouched')
  t.equal((await sql('select id from access_tokens where rotated_from = ?', [ivys.id])).length, 0, 'and was not rotated')
  t.equal((await introspectAsServer(ivys.token)).active, true)
  assertProblem(t, await get(app, '/api/v1/tokens/not-a-uuid', hank.token), 400, 'FST_ERR_VALIDATION', /params\/id must match format "uuid"/)
})

t.test('authentication and scopes', async (t) => {
  await seedUser(app, 'jack')
  const reader = await seedToken(app, 'jack', { name: 'reader', scopes: READ })
  const writer = await seedToken(app, 'jack', { name: 'writer', scopes: ['write:tokens'] })
  const other = await seedToken(app, 'jack', { name: 'other', scopes: ['read:repository'] })

  t.test('no token is a 401 with a Bearer challenge', async (t) => {
    for (const [method, url] of [['GET', '/api/v1/tokens'], ['GET', `/api/v1/tokens/${other.id}`], ['POST', `/api/v1/tokens/${other.id}/invalidate`], ['POST', `/api/v1/tokens/${other.id}/rotate`]] as const) {
      const res = await app.inject({ method, url })
      assertProblem(t, res, 401, 'TESSERA_TOKEN_REQUIRED')
      t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera"', `${method} ${url}`)
    }
  })

  t.test('an unknown token is a 401 invalid_token', async (t) => {
    const res = await get(app, '/api/v1/tokens', `${reader.token.slice(0, -6)}AAAAAA`)
    assertProblem(t, res, 401, 'TESSERA_INVALID_TOKEN')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
  })

  t.test('Basic authentication is not accepted', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: basic('jack', 'correct horse battery') } })
    assertProblem(t, res, 401, 'TESSERA_BEARER_SCHEME_REQUIRED')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera"', 'RFC 6750 §3.1: no error code for credentials of another scheme')
  })

  t.test('a token without read:tokens cannot list or show', async (t) => {
    for (const url of ['/api/v1/tokens', `/api/v1/tokens/${other.id}`]) {
      const res = await get(app, url, other.token)
      assertProblem(t, res, 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the read:tokens scope')
      t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera", error="insufficient_scope", error_description="Requires the read:tokens scope", scope="read:tokens"')
    }
  })

  t.test('write:tokens implies read:tokens', async (t) => {
    t.equal((await get(app, '/api/v1/tokens', writer.token)).statusCode, 200)
  })

  t.test('a token without write:tokens cannot invalidate or rotate', async (t) => {
    assertProblem(t, await post(app, `/api/v1/tokens/${other.id}/invalidate`, reader.token), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the write:tokens scope')
    assertProblem(t, await post(app, `/api/v1/tokens/${other.id}/rotate`, reader.token, {}), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the write:tokens scope')
    t.equal((await introspectAsServer(other.token)).active, true)
  })
})

t.test('invalidating a token', async (t) => {
  await seedUser(app, 'kate')
  const manager = await seedToken(app, 'kate', { name: 'manager', scopes: READ_WRITE })
  const target = await seedToken(app, 'kate', { name: 'laptop', scopes: ['read:repository'] })

  t.test('makes it inactive before the answer, even when it was cached, and answers its view', async (t) => {
    t.equal((await introspectAsServer(target.token)).active, true, 'active, and now cached')
    const before = Date.now()
    const res = await post(app, `/api/v1/tokens/${target.id}/invalidate`, manager.token)
    t.equal(res.statusCode, 200)
    const view = res.json() as View
    t.strictSame(Object.keys(view).sort(), VIEW_FIELDS)
    t.match(view, { id: target.id, name: 'laptop', state: 'revoked', revoked_at: ISO_DATE, application: { name: String, client_id: String } })
    t.ok(Date.parse(view.revoked_at as string) >= before - 1000)
    t.strictSame(await introspectAsServer(target.token), { active: false })
    const events = await app.orm.em.fork().find(AuditEvent, { action: 'token.revoked', targetId: target.id })
    t.equal(events.length, 1, 'one token.revoked event')
  })

  t.test('hides it from the default listing; state=revoked and state=all show it', async (t) => {
    const listed = async (query: string): Promise<string[]> => (await fetchPage(app, `/api/v1/tokens${query}`, manager.token)).ids
    t.strictSame(await listed(''), [manager.id])
    t.strictSame(await listed('?state=revoked'), [target.id])
    t.strictSame(await listed('?state=all'), [target.id, manager.id])
    t.strictSame(await listed('?state=active'), [manager.id])
    const shown = await get(app, `/api/v1/tokens/${target.id}`, manager.token)
    t.match(shown.json(), { id: target.id, state: 'revoked' }, 'GET by id still shows it')
  })

  t.test('a second time is a no-op that keeps the first revocation time', async (t) => {
    const first = (await get(app, `/api/v1/tokens/${target.id}`, manager.token)).json() as View
    const again = await post(app, `/api/v1/tokens/${target.id}/invalidate`, manager.token)
    t.equal(again.statusCode, 200)
    t.equal((again.json() as View).revoked_at, first.revoked_at)
    t.equal(await app.orm.em.fork().count(AuditEvent, { action: 'token.revoked', targetId: target.id }), 1)
  })

  t.test('a token may invalidate itself, and is refused right after', async (t) => {
    const res = await post(app, `/api/v1/tokens/${manager.id}/invalidate`, manager.token)
    t.equal(res.statusCode, 200)
    t.equal((res.json() as View).state, 'revoked')
    assertProblem(t, await get(app, '/api/v1/tokens', manager.token), 401, 'TESSERA_INVALID_TOKEN')
  })
})
