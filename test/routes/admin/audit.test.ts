import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { assertProblem, basic, bearer, build, seedToken, seedUser } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const USER_AGENT = 'provisioner/1.0'
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

interface AuditView {
  id: string
  created_at: string
  actor: string
  actor_id: string | null
  action: string
  target_type: string | null
  target_id: string | null
  target: string | null
  ip: string | null
  user_agent: string | null
  details: Record<string, unknown> | null
}

const app = await build(t, { PUBLIC_URL })
const root = await seedUser(app, 'root', { admin: true })
const adminToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

async function admin (method: Method, url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({
    method,
    url,
    headers: { authorization: bearer(adminToken), 'user-agent': USER_AGENT },
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
  })
}

interface Page { res: LightMyRequestResponse, events: AuditView[], links: Record<string, string> }

async function audit (query: string): Promise<Page> {
  return await fetchPage(`/api/v1/admin/audit${query === '' ? '' : `?${query}`}`)
}

/** Follows an absolute Link URL exactly as given (its path and query, through app.inject). */
async function follow (url: string | undefined): Promise<Page> {
  if (url === undefined) throw new Error('no such link')
  const parsed = new URL(url)
  return await fetchPage(`${parsed.pathname}${parsed.search}`)
}

async function fetchPage (path: string): Promise<Page> {
  const res = await admin('GET', path)
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${res.body}`)
  return { res, events: res.json(), links: parseLinks(res.headers.link) }
}

/** Parses an RFC 8288 Link header into { rel: url }. */
function parseLinks (header: string | string[] | number | undefined): Record<string, string> {
  const links: Record<string, string> = {}
  if (typeof header !== 'string') return links
  for (const part of header.split(', ')) {
    const match = /^<([^>]+)>; rel="([a-z]+)"$/.exec(part)
    if (match === null) throw new Error(`unparsable Link part: ${part}`)
    links[match[2] as string] = match[1] as string
  }
  return links
}

async function sql<T = unknown> (query: string, params: unknown[] = []): Promise<T[]> {
  return await app.orm.em.getConnection().execute<T[]>(query, params)
}

async function count (from: string, params: unknown[] = []): Promise<number> {
  const rows = await sql<{ n: number }>(`select count(*)::int as n from ${from}`, params)
  return rows[0]?.n ?? -1
}

async function newestId (): Promise<string> {
  const [row] = await sql<{ id: string }>('select id from audit_events order by id desc limit 1')
  if (row === undefined) throw new Error('the audit log is empty')
  return row.id
}

/** Runs `change` and returns the audit events it wrote, newest first, read through the API. */
async function eventsOf (change: () => Promise<LightMyRequestResponse>, expectedStatus: number): Promise<AuditView[]> {
  const before = await newestId()
  const res = await change()
  if (res.statusCode !== expectedStatus) throw new Error(`expected ${expectedStatus}, got ${res.statusCode}: ${res.body}`)
  return (await audit(`since_id=${before}&limit=80`)).events
}

const byRoot = { actor: 'root', actor_id: root.id, ip: '127.0.0.1', user_agent: USER_AGENT, created_at: ISO_DATE }

t.test('atomicity: a refused change leaves no event and no row', async (t) => {
  t.test('demoting the last active administrator (409)', async (t) => {
    const events = await eventsOf(async () => await admin('PATCH', '/api/v1/admin/users/root', { admin: false, email: 'root@example.test' }), 409)
    t.strictSame(events, [])
    t.strictSame(await sql('select admin, email from users where id = ?', [root.id]), [{ admin: true, email: null }])
  })

  t.test('a duplicate username (409)', async (t) => {
    const users = await count('users')
    t.strictSame(await eventsOf(async () => await admin('POST', '/api/v1/admin/users', { username: 'ROOT' }), 409), [])
    t.equal(await count('users'), users)
  })

  t.test('an unknown scope on token creation (400)', async (t) => {
    const tokens = await count('access_tokens')
    t.strictSame(await eventsOf(async () => await admin('POST', '/api/v1/admin/users/root/tokens', { name: 'bad', scopes: ['read:tokens', 'sudo'] }), 400), [])
    t.equal(await count('access_tokens'), tokens)
  })

  t.test('an unknown scope on application creation (400)', async (t) => {
    const applications = await count('applications')
    t.strictSame(await eventsOf(async () => await admin('POST', '/api/v1/admin/applications', { name: 'bad', scopes: ['sudo'] }), 400), [])
    t.equal(await count('applications'), applications)
  })

  t.test('a token for an unknown user (404)', async (t) => {
    t.strictSame(await eventsOf(async () => await admin('POST', '/api/v1/admin/users/nobody/tokens', { name: 'x', scopes: ['read:tokens'] }), 404), [])
  })
})

t.test('every state change writes one event naming the admin, the target and the request', async (t) => {
  let userId = ''
  let tokenId = ''
  let applicationId = ''

  t.test('user.created', async (t) => {
    const events = await eventsOf(async () => await admin('POST', '/api/v1/admin/users', { username: 'subject', password: 'a long password' }), 201)
    userId = (await sql<{ id: string }>('select id from users where username = ?', ['subject']))[0]?.id ?? ''
    t.match(events, [{ ...byRoot, action: 'user.created', target_type: 'user', target_id: userId, target: 'subject', details: { admin: false, password: true } }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes('a long password'), 'no password in the event')
  })

  t.test('user.suspended', async (t) => {
    const events = await eventsOf(async () => await admin('PATCH', '/api/v1/admin/users/subject', { suspended: true }), 200)
    t.match(events, [{ ...byRoot, action: 'user.suspended', target_type: 'user', target_id: userId, target: 'subject' }])
    t.equal(events.length, 1)
  })

  t.test('user.unsuspended', async (t) => {
    const events = await eventsOf(async () => await admin('PATCH', '/api/v1/admin/users/subject', { suspended: false }), 200)
    t.match(events, [{ ...byRoot, action: 'user.unsuspended', target_id: userId }])
    t.equal(events.length, 1)
  })

  t.test('user.updated names what changed, never the password', async (t) => {
    const events = await eventsOf(async () => await admin('PATCH', '/api/v1/admin/users/subject', { email: 'subject@example.test', password: 'another long one' }), 200)
    t.match(events, [{ ...byRoot, action: 'user.updated', target_id: userId, details: { changed: ['password', 'email'] } }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes('another long one'))
  })

  t.test('token.created', async (t) => {
    const before = await newestId()
    const res = await admin('POST', '/api/v1/admin/users/subject/tokens', { name: 'ci', scopes: ['read:repository'] })
    t.equal(res.statusCode, 201)
    tokenId = res.json().id
    const { events } = await audit(`since_id=${before}`)
    t.match(events, [{ ...byRoot, action: 'token.created', target_type: 'token', target_id: tokenId, target: 'ci', details: { owner: 'subject', client_id: 'internal', scopes: ['read:repository'] } }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes(res.json().token), 'no plaintext in the event')
  })

  t.test('token.revoked', async (t) => {
    const events = await eventsOf(async () => await admin('DELETE', `/api/v1/admin/users/subject/tokens/${tokenId}`), 204)
    t.match(events, [{ ...byRoot, action: 'token.revoked', target_type: 'token', target_id: tokenId, target: 'ci', details: { reason: 'revoked by an administrator' } }])
    t.equal(events.length, 1)
  })

  t.test('token.revoked, by value', async (t) => {
    const { token, id } = await seedToken(app, 'subject', { name: 'leaked' })
    const events = await eventsOf(async () => await admin('POST', '/api/v1/admin/tokens/revoke', { tokens: [token, token] }), 200)
    t.match(events, [{ ...byRoot, action: 'token.revoked', target_id: id, target: 'leaked', details: { reason: 'revoked by value by an administrator' } }])
    t.equal(events.length, 1, 'one event although the value came twice')
  })

  t.test('application.created', async (t) => {
    const before = await newestId()
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'gateway', scopes: ['introspect'] })
    t.equal(res.statusCode, 201)
    applicationId = res.json().id
    const { events } = await audit(`since_id=${before}`)
    t.match(events, [{ ...byRoot, action: 'application.created', target_type: 'application', target_id: applicationId, target: 'gateway', details: { client_id: res.json().client_id, scopes: ['introspect'] } }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes(res.json().client_secret), 'no secret in the event')
  })

  t.test('application.updated', async (t) => {
    const events = await eventsOf(async () => await admin('PATCH', `/api/v1/admin/applications/${applicationId}`, { name: 'gateway-2', scopes: [] }), 200)
    t.match(events, [{ ...byRoot, action: 'application.updated', target_id: applicationId, target: 'gateway-2', details: { changed: ['name', 'scopes'] } }])
    t.equal(events.length, 1)
  })

  t.test('application.secret_rotated', async (t) => {
    const before = await newestId()
    const res = await admin('POST', `/api/v1/admin/applications/${applicationId}/secret`)
    t.equal(res.statusCode, 200)
    const { events } = await audit(`since_id=${before}`)
    t.match(events, [{ ...byRoot, action: 'application.secret_rotated', target_id: applicationId }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes(res.json().client_secret), 'no secret in the event')
  })

  t.test('application.deleted', async (t) => {
    const events = await eventsOf(async () => await admin('DELETE', `/api/v1/admin/applications/${applicationId}`), 204)
    t.match(events, [{ ...byRoot, action: 'application.deleted', target_id: applicationId, target: 'gateway-2' }])
    t.equal(events.length, 1)
  })

  t.test('auth.failed on a wrong password (written after the answer)', async (t) => {
    const before = await newestId()
    const res = await app.inject({ method: 'POST', url: '/api/v1/users/subject/tokens', headers: { authorization: basic('subject', 'wrong password!'), 'user-agent': 'curl/8' }, payload: { name: 'x', scopes: ['read:tokens'] } })
    t.equal(res.statusCode, 401)
    let events: AuditView[] = []
    for (let attempt = 0; attempt < 80 && events.length === 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25))
      events = (await audit(`since_id=${before}`)).events
    }
    t.match(events, [{ action: 'auth.failed', actor: 'subject', actor_id: null, target_type: 'credential', target: 'subject', ip: '127.0.0.1', user_agent: 'curl/8', details: { reason: 'invalid username or password', route: '/api/v1/users/:username/tokens' } }])
    t.equal(events.length, 1)
    t.notOk(JSON.stringify(events).includes('wrong password!'))
  })

  t.test('user.deleted', async (t) => {
    const events = await eventsOf(async () => await admin('DELETE', '/api/v1/admin/users/subject'), 204)
    t.match(events, [{ ...byRoot, action: 'user.deleted', target_type: 'user', target_id: userId, target: 'subject' }])
    t.equal(events.length, 1)
    t.equal(await count('audit_events where target_id = ?', [userId]), 5, 'the user\'s history outlives the user')
  })
})

t.test('keyset pagination', async (t) => {
  // At least 45 more events: password-less users are cheap to create.
  for (let i = 0; i < 46; i++) {
    const res = await admin('POST', '/api/v1/admin/users', { username: `bulk-${String(i).padStart(2, '0')}` })
    if (res.statusCode !== 201) throw new Error(res.body)
  }
  const all = (await sql<{ id: string }>('select id from audit_events order by id desc')).map((row) => row.id)
  t.ok(all.length >= 60, `the log holds ${all.length} events`)

  t.test('following next to the end and prev back to the start: newest first, no duplicates, no gaps', async (t) => {
    const forward: Page[] = []
    let page = await audit('limit=10')
    while (page.events.length > 0) {
      forward.push(page)
      t.ok(page.events.length <= 10)
      t.strictSame(Object.keys(page.links).sort(), ['next', 'prev'])
      t.match(page.links.next, new RegExp(`^${PUBLIC_URL}/api/v1/admin/audit\\?max_id=[0-9a-f-]{36}&limit=10$`))
      page = await follow(page.links.next)
    }
    t.equal(page.res.headers.link, undefined, 'the empty page past the end has no Link header')
    t.strictSame(page.events, [])

    const seen = forward.flatMap((p) => p.events)
    t.strictSame(seen.map((event) => event.id), all, 'every event exactly once, newest first')
    t.equal(forward.length, Math.ceil(all.length / 10))
    t.ok(seen.every((event, i) => i === 0 || event.created_at <= (seen[i - 1] as AuditView).created_at), 'creation times never increase')

    // Back from the last page with prev: the same pages again, in reverse, then nothing.
    const backward: Page[] = []
    page = await follow(forward.at(-1)?.links.prev)
    while (page.events.length > 0) {
      backward.push(page)
      page = await follow(page.links.prev)
    }
    t.equal(page.res.headers.link, undefined, 'the empty page before the newest has no Link header')
    const idsOf = (pages: Page[]): string[][] => pages.map((p) => p.events.map((event) => event.id))
    t.strictSame(idsOf(backward), idsOf(forward.slice(0, -1)).reverse(), 'prev retraces the same pages')
  })

  t.test('filters stay in the Link URLs while walking', async (t) => {
    const users = (await sql<{ id: string }>('select id from audit_events where action like \'user.%\' order by id desc')).map((row) => row.id)
    const seen: string[] = []
    let page = await audit('action=user.*&limit=7')
    while (page.events.length > 0) {
      seen.push(...page.events.map((event) => event.id))
      t.match(page.links.next, /\?action=user\.\*&max_id=/)
      page = await follow(page.links.next)
    }
    t.strictSame(seen, users)
  })

  t.test('max_id, since_id and min_id bounds are exclusive', async (t) => {
    const pivot = all[20] as string
    const ids = async (query: string): Promise<string[]> => (await audit(query)).events.map((event) => event.id)
    t.strictSame(await ids(`max_id=${pivot}&limit=5`), all.slice(21, 26), 'max_id: the next older ones')
    t.strictSame(await ids(`since_id=${pivot}&limit=5`), all.slice(0, 5), 'since_id: the newest ones after it')
    t.strictSame(await ids(`min_id=${pivot}&limit=5`), all.slice(15, 20), 'min_id: the ones right after it')
    t.strictSame(await ids(`max_id=${pivot}&since_id=${all[25] as string}`), all.slice(21, 25), 'a window between max_id and since_id')
    t.strictSame(await ids(`max_id=${pivot}&min_id=${all[25] as string}&limit=2`), all.slice(23, 25), 'a window read up from min_id')
    t.strictSame(await ids(`since_id=${all[0] as string}`), [], 'nothing after the newest')
    t.strictSame(await ids(`min_id=${all[0] as string}`), [])
    t.strictSame(await ids(`max_id=${all.at(-1) as string}`), [], 'nothing before the oldest')
    t.equal((await audit(`min_id=${all[0] as string}`)).res.headers.link, undefined, 'no Link on an empty page')
  })

  t.test('the default page is 20 events', async (t) => {
    const { events, links } = await audit('')
    t.strictSame(events.map((event) => event.id), all.slice(0, 20))
    t.equal(links.next, `${PUBLIC_URL}/api/v1/admin/audit?max_id=${all[19] as string}&limit=20`)
    t.equal(links.prev, `${PUBLIC_URL}/api/v1/admin/audit?min_id=${all[0] as string}&limit=20`)
  })

  t.test('limit=0, limit=81, and malformed ids are 400', async (t) => {
    for (const query of ['limit=0', 'limit=81', 'limit=ten', 'max_id=not-a-uuid', 'since_id=123', 'min_id=01900000']) {
      assertProblem(t, await admin('GET', `/api/v1/admin/audit?${query}`), 400, 'FST_ERR_VALIDATION')
    }
  })

  t.test('limit=80 is accepted', async (t) => {
    t.strictSame((await audit('limit=80')).events.map((event) => event.id), all.slice(0, 80))
  })
})

t.test('filters', async (t) => {
  const ids = async (query: string): Promise<string[]> => (await audit(`${query}&limit=80`)).events.map((event) => event.id)
  const expected = async (where: string, params: unknown[] = []): Promise<string[]> =>
    (await sql<{ id: string }>(`select id from audit_events where ${where} order by id desc limit 80`, params)).map((row) => row.id)

  t.test('actor by label and by id', async (t) => {
    const system = await ids('actor=system')
    t.ok(system.length >= 2, 'the seeded user and token')
    t.strictSame(system, await expected('actor = \'system\''))
    const byLabel = await ids('actor=root')
    t.strictSame(byLabel, await expected('actor = \'root\''))
    t.strictSame(await ids(`actor=${root.id.toUpperCase()}`), byLabel)
    t.strictSame(await ids('actor=nobody'), [])
  })

  t.test('target by label and by id', async (t) => {
    const [bulk] = await sql<{ target_id: string }>('select target_id from audit_events where target = \'bulk-07\'')
    const byLabel = await ids('target=bulk-07')
    t.equal(byLabel.length, 1)
    t.strictSame(await ids(`target=${bulk?.target_id ?? ''}`), byLabel)
    t.strictSame(await ids(`target=${bulk?.target_id.toUpperCase() ?? ''}`), byLabel, 'ids match in either case, as actor ids do')
    t.match((await audit('target=bulk-07')).events, [{ action: 'user.created', target: 'bulk-07', target_id: bulk?.target_id }])
  })

  t.test('action exactly, or a family with .*', async (t) => {
    const tokens = (await audit('action=token.*&limit=80')).events
    t.strictSame(tokens.map((event) => event.action).sort(), ['token.created', 'token.created', 'token.created', 'token.revoked', 'token.revoked'])
    t.strictSame(tokens.map((event) => event.id), await expected('action like \'token.%\''))
    const revoked = await ids('action=token.revoked')
    t.strictSame(revoked, await expected('action = \'token.revoked\''))
    t.equal(revoked.length, 2)
    t.strictSame(await ids('action=token'), [], 'a bare prefix is not a family')
  })

  t.test('a malformed action is 400', async (t) => {
    for (const action of ['token.%', 'TOKEN.created', '*', 'token.created.x']) {
      assertProblem(t, await admin('GET', `/api/v1/admin/audit?action=${encodeURIComponent(action)}`), 400, 'FST_ERR_VALIDATION')
    }
  })

  t.test('created_after and created_before are exclusive bounds', async (t) => {
    const [middle] = await sql<{ created_at: Date | string }>('select created_at from audit_events where target = \'bulk-20\'')
    const at = new Date(middle?.created_at ?? Number.NaN).toISOString()
    const after = await ids(`created_after=${at}`)
    const before = await ids(`created_before=${at}`)
    t.ok(after.length > 0 && before.length > 0)
    t.strictSame(after, await expected('created_at > ?', [at]))
    t.strictSame(before, await expected('created_at < ?', [at]))
    t.strictSame(await ids(`created_after=${at}&created_before=${at}`), [])
    assertProblem(t, await admin('GET', '/api/v1/admin/audit?created_after=yesterday'), 400, 'FST_ERR_VALIDATION')
  })

  t.test('filters combine', async (t) => {
    t.strictSame(await ids('actor=root&action=user.*&target=bulk-03'), await expected('actor = \'root\' and action like \'user.%\' and target = \'bulk-03\''))
    t.equal((await ids('actor=system&action=user.*&target=bulk-03')).length, 0)
  })
})
