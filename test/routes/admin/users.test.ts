import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { assertProblem, basic, bearer, build, introspection, seedApplication, seedToken, seedUser } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const PASSWORD = 'correct horse battery'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

/** Calls the application as `token`'s holder. */
function client (app: FastifyInstance, token: string) {
  return async function call (method: Method, url: string, payload?: unknown): Promise<LightMyRequestResponse> {
    return await app.inject({
      method,
      url,
      headers: { authorization: bearer(token) },
      ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
    })
  }
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

async function count (app: FastifyInstance, sql: string, params: unknown[] = []): Promise<number> {
  const rows = await app.orm.em.getConnection().execute<Array<{ n: number }>>(`select count(*)::int as n from ${sql}`, params)
  return rows[0]?.n ?? -1
}

/** Three views of one token that must agree: introspection, token info, and the admin lookup. */
function probes (app: FastifyInstance, adminToken: string, caller: { clientId: string, clientSecret: string }) {
  return {
    async introspect (token: string): Promise<unknown> {
      return (await introspection(app, token, basic(caller.clientId, caller.clientSecret))).json().active
    },
    async tokenInfo (token: string): Promise<number> {
      const res = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
      return res.statusCode
    },
    async lookup (token: string): Promise<{ active: boolean, reason: string | null }> {
      const res = await client(app, adminToken)('POST', '/api/v1/admin/tokens/lookup', { token })
      const [result] = res.json() as Array<{ active: boolean, reason: string | null }>
      if (result === undefined) throw new Error(`lookup answered ${res.statusCode}: ${res.body}`)
      return { active: result.active, reason: result.reason }
    },
    isCached (token: string): boolean {
      return app.services.cache.get(app.services.digester.cacheKey(token)) != null
    }
  }
}

t.test('provisioning with Basic authentication disabled: a password-less bot and its token, over the admin API alone', async (t) => {
  const app = await build(t, { BASIC_AUTH_ENABLED: 'false' })
  const root = await seedUser(app, 'root', { admin: true })
  const rootToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token
  const admin = client(app, rootToken)
  const introspector = await seedApplication(app)

  const created = await admin('POST', '/api/v1/admin/users', { username: 'ci-bot' })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { username: 'ci-bot', admin: false, suspended: false })
  const botId = created.json().id as string
  const stored = await app.orm.em.getConnection().execute<Array<{ password_hash: string | null }>>('select password_hash from users where id = ?', [botId])
  t.strictSame(stored, [{ password_hash: null }], 'the bot has no password')

  const issued = await admin('POST', '/api/v1/admin/users/ci-bot/tokens', { name: 'deploy', scopes: ['read:repository'] })
  t.equal(issued.statusCode, 201)
  t.equal(issued.headers['cache-control'], 'no-store')
  const body = issued.json()
  t.match(body, { id: UUID, name: 'deploy', scopes: ['read:repository'], audience: null, created_at: ISO_DATE, expires_at: ISO_DATE })
  t.equal(body.sha1, body.token)
  t.equal(body.token_last_eight, body.token.slice(-8))
  const botToken = body.token as string

  const listing = await admin('GET', '/api/v1/admin/users/ci-bot/tokens')
  t.equal(listing.statusCode, 200)
  t.match(listing.json(), [{ id: body.id, name: 'deploy', created_by: root.id, owner: { id: botId, username: 'ci-bot' } }])
  t.equal(listing.json().length, 1)

  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(botToken) } })
  t.equal(info.statusCode, 200)
  t.match(info.json(), { resource_owner_id: botId, scope: ['read:repository'], application: { uid: 'internal' } })

  const introspected = await introspection(app, botToken, basic(introspector.clientId, introspector.clientSecret))
  t.match(introspected.json(), { active: true, username: 'ci-bot', sub: botId, scope: 'read:repository', client_id: 'internal' })

  // Without PUBLIC_URL, listing links are built from the request's own scheme and host.
  const users = await app.inject({ method: 'GET', url: '/api/v1/admin/users?q=bot&limit=5', headers: { authorization: bearer(rootToken), host: 'tessera.internal:8443' } })
  t.match(users.json(), [{ id: botId, username: 'ci-bot' }])
  t.equal(users.headers.link, '<http://tessera.internal:8443/api/v1/admin/users?q=bot&page=1&limit=5>; rel="first", <http://tessera.internal:8443/api/v1/admin/users?q=bot&page=1&limit=5>; rel="last"')

  const selfService = await app.inject({ method: 'POST', url: '/api/v1/users/root/tokens', headers: { authorization: basic('root', PASSWORD) }, payload: { name: 'mine', scopes: ['read:tokens'] } })
  assertProblem(t, selfService, 403, 'TESSERA_BASIC_AUTH_DISABLED')
})

t.test('the last active administrator', async (t) => {
  const app = await build(t)
  const rootUser = await seedUser(app, 'root', { admin: true })
  const root = client(app, (await seedToken(app, 'root', { scopes: ['admin'] })).token)
  const userEvents = async (): Promise<number> => await count(app, 'audit_events where action like \'user.%\' and target_id = ?', [rootUser.id])

  t.test('cannot demote, suspend or delete itself (409), and nothing changes', async (t) => {
    const before = await userEvents()
    assertProblem(t, await root('PATCH', '/api/v1/admin/users/root', { admin: false }), 409, 'TESSERA_LAST_ADMINISTRATOR', /root is the last active administrator/)
    assertProblem(t, await root('PATCH', '/api/v1/admin/users/root', { suspended: true }), 409, 'TESSERA_LAST_ADMINISTRATOR', /last active administrator/)
    assertProblem(t, await root('PATCH', '/api/v1/admin/users/root', { suspended: true, email: 'root@example.test' }), 409, 'TESSERA_LAST_ADMINISTRATOR')
    assertProblem(t, await root('DELETE', '/api/v1/admin/users/root'), 409, 'TESSERA_LAST_ADMINISTRATOR', /last active administrator/)
    t.match((await root('GET', '/api/v1/admin/users/root')).json(), { username: 'root', admin: true, suspended: false, email: null })
    t.equal(await userEvents(), before, 'no audit event')
  })

  t.test('with a second administrator, demotion, suspension and deletion work', async (t) => {
    t.equal((await root('POST', '/api/v1/admin/users', { username: 'deputy', admin: true })).statusCode, 201)
    const deputy = client(app, (await seedToken(app, 'deputy', { scopes: ['admin'] })).token)

    t.match((await deputy('PATCH', '/api/v1/admin/users/root', { suspended: true })).json(), { username: 'root', suspended: true, admin: true })
    // A suspended administrator does not count: the deputy is now the last active one.
    assertProblem(t, await deputy('PATCH', '/api/v1/admin/users/deputy', { admin: false }), 409, 'TESSERA_LAST_ADMINISTRATOR', /deputy is the last active administrator/)
    t.match((await deputy('PATCH', '/api/v1/admin/users/root', { suspended: false })).json(), { suspended: false, suspended_at: null })

    const demoted = await root('PATCH', '/api/v1/admin/users/root', { admin: false })
    t.equal(demoted.statusCode, 200)
    t.match(demoted.json(), { username: 'root', admin: false })
    // Demoted: the token no longer grants admin (what it grants follows its owner's rights now).
    assertProblem(t, await root('GET', '/api/v1/admin/users'), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the admin scope')
    assertProblem(t, await deputy('DELETE', '/api/v1/admin/users/deputy'), 409, 'TESSERA_LAST_ADMINISTRATOR')

    t.equal((await deputy('PATCH', '/api/v1/admin/users/root', { admin: true })).statusCode, 200)
    const deleted = await deputy('DELETE', '/api/v1/admin/users/deputy')
    t.equal(deleted.statusCode, 204)
    t.equal(deleted.body, '')
    t.equal((await root('GET', '/api/v1/admin/users/deputy')).statusCode, 404)
  })
})

t.test('users', async (t) => {
  const app = await build(t, { PUBLIC_URL })
  await seedUser(app, 'root', { admin: true })
  const adminToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token
  const admin = client(app, adminToken)
  const introspector = await seedApplication(app)
  const probe = probes(app, adminToken, introspector)

  t.test('create', async (t) => {
    t.test('a user with a password and an email: 201 with the user, the password stored as argon2id', async (t) => {
      const res = await admin('POST', '/api/v1/admin/users', { username: 'Carol.Smith', email: 'carol@example.test', password: 'a long password' })
      t.equal(res.statusCode, 201)
      const body = res.json()
      t.strictSame(Object.keys(body).sort(), ['admin', 'created_at', 'email', 'id', 'suspended', 'suspended_at', 'username'])
      t.match(body, { id: UUID, username: 'Carol.Smith', email: 'carol@example.test', admin: false, suspended: false, suspended_at: null, created_at: ISO_DATE })
      const rows = await app.orm.em.getConnection().execute<Array<{ password_hash: string }>>('select password_hash from users where id = ?', [body.id])
      t.match(rows[0]?.password_hash, /^\$argon2id\$/)
    })

    t.test('a password-less administrator', async (t) => {
      const res = await admin('POST', '/api/v1/admin/users', { username: 'ops_2', admin: true, email: null })
      t.equal(res.statusCode, 201)
      t.match(res.json(), { username: 'ops_2', admin: true, email: null })
    })

    t.test('an existing username in another case is 409, and creates nothing', async (t) => {
      const before = await count(app, 'users')
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { username: 'carol.smith' }), 409, 'TESSERA_USERNAME_TAKEN', /already exists/)
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { username: 'ROOT' }), 409, 'TESSERA_USERNAME_TAKEN')
      t.equal(await count(app, 'users'), before)
    })

    const invalidUsernames: Array<[string, string]> = [
      ['empty', ''],
      ['41 characters', `a${'b'.repeat(40)}`],
      ['starting with a dot', '.hidden'],
      ['starting with a dash', '-dash'],
      ['containing a space', 'two words'],
      ['containing a slash', 'a/b'],
      ['non-ASCII', 'zoë']
    ]
    for (const [what, username] of invalidUsernames) {
      t.test(`a username ${what} is 400`, async (t) => {
        const res = await admin('POST', '/api/v1/admin/users', { username })
        assertProblem(t, res, 400, 'FST_ERR_VALIDATION', /^body\/username /)
      })
    }

    t.test('a 40-character username is accepted', async (t) => {
      t.equal((await admin('POST', '/api/v1/admin/users', { username: `x${'y'.repeat(39)}` })).statusCode, 201)
    })

    t.test('a malformed email is 400', async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { username: 'dave', email: 'not-an-email' }), 400, 'FST_ERR_VALIDATION', /^body\/email /)
    })

    t.test('a password shorter than 8 characters is 400', async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { username: 'dave', password: 'short' }), 400, 'FST_ERR_VALIDATION', /^body\/password /)
    })

    t.test('an unknown property is 400 and names it', async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { username: 'dave', role: 'owner' }), 400, 'FST_ERR_VALIDATION', /\(role\)/)
    })

    t.test('a missing username is 400', async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/users', { email: 'dave@example.test' }), 400, 'FST_ERR_VALIDATION')
    })

    t.test('none of the refused users exists', async (t) => {
      t.equal(await count(app, 'users where lower(username) in (\'dave\', \'.hidden\', \'two words\')'), 0)
    })
  })

  t.test('list', async (t) => {
    // Five users whose names share "lister", in creation order; one suspended, two admins.
    for (const [name, options] of [['lister-a', {}], ['lister-b', { admin: true }], ['lister-c', { suspended: true }], ['lister-d', {}], ['lister-e', { admin: true }]] as const) {
      await seedUser(app, name, options)
    }
    for (const [day, name] of ['lister-a', 'lister-b', 'lister-c', 'lister-d', 'lister-e'].entries()) {
      await app.orm.em.getConnection().execute('update users set created_at = ? where username = ?', [`2024-01-0${day + 1}T00:00:00.000Z`, name])
    }

    t.test('page/limit with X-Total-Count and absolute first/prev/next/last links that keep the filters', async (t) => {
      const res = await admin('GET', '/api/v1/admin/users?q=LISTER&limit=2&page=2')
      t.equal(res.statusCode, 200)
      t.strictSame(res.json().map((user: { username: string }) => user.username), ['lister-c', 'lister-d'])
      t.equal(res.headers['x-total-count'], '5')
      t.strictSame(parseLinks(res.headers.link), {
        first: `${PUBLIC_URL}/api/v1/admin/users?q=LISTER&page=1&limit=2`,
        last: `${PUBLIC_URL}/api/v1/admin/users?q=LISTER&page=3&limit=2`,
        next: `${PUBLIC_URL}/api/v1/admin/users?q=LISTER&page=3&limit=2`,
        prev: `${PUBLIC_URL}/api/v1/admin/users?q=LISTER&page=1&limit=2`
      })
    })

    t.test('the last page has prev and no next', async (t) => {
      const res = await admin('GET', '/api/v1/admin/users?q=lister&limit=2&page=3')
      t.strictSame(res.json().map((user: { username: string }) => user.username), ['lister-e'])
      t.strictSame(Object.keys(parseLinks(res.headers.link)).sort(), ['first', 'last', 'prev'])
    })

    t.test('state=suspended and state=active', async (t) => {
      const suspended = await admin('GET', '/api/v1/admin/users?q=lister&state=suspended')
      t.strictSame(suspended.json().map((user: { username: string }) => user.username), ['lister-c'])
      t.equal(suspended.headers['x-total-count'], '1')
      const active = await admin('GET', '/api/v1/admin/users?q=lister&state=active')
      t.strictSame(active.json().map((user: { username: string }) => user.username), ['lister-a', 'lister-b', 'lister-d', 'lister-e'])
    })

    t.test('admin=true and admin=false', async (t) => {
      t.strictSame((await admin('GET', '/api/v1/admin/users?q=lister&admin=true')).json().map((user: { username: string }) => user.username), ['lister-b', 'lister-e'])
      t.strictSame((await admin('GET', '/api/v1/admin/users?q=lister&admin=false')).json().map((user: { username: string }) => user.username), ['lister-a', 'lister-c', 'lister-d'])
    })

    t.test('created_before and created_after', async (t) => {
      t.strictSame((await admin('GET', '/api/v1/admin/users?q=lister&created_before=2024-01-02T12:00:00Z')).json().map((user: { username: string }) => user.username), ['lister-a', 'lister-b'])
      t.strictSame((await admin('GET', '/api/v1/admin/users?q=lister&created_after=2024-01-02T12:00:00Z')).json().map((user: { username: string }) => user.username), ['lister-c', 'lister-d', 'lister-e'])
      t.match((await admin('GET', '/api/v1/admin/users?q=lister&created_after=2024-01-02T12:00:00Z')).json()[0], { created_at: '2024-01-03T00:00:00.000Z' })
    })

    t.test('q matches LIKE wildcards literally', async (t) => {
      const res = await admin('GET', '/api/v1/admin/users?q=%25')
      t.strictSame(res.json(), [])
      t.equal(res.headers['x-total-count'], '0')
    })

    t.test('limit=0, limit=81, page=0 and an unknown state are 400', async (t) => {
      for (const query of ['limit=0', 'limit=81', 'page=0', 'state=deleted']) {
        assertProblem(t, await admin('GET', `/api/v1/admin/users?${query}`), 400, 'FST_ERR_VALIDATION')
      }
    })
  })

  t.test('show', async (t) => {
    t.test('by username, case-insensitively', async (t) => {
      const res = await admin('GET', '/api/v1/admin/users/LISTER-A')
      t.equal(res.statusCode, 200)
      t.match(res.json(), { username: 'lister-a', admin: false, suspended: false })
    })

    t.test('an unknown user is 404', async (t) => {
      assertProblem(t, await admin('GET', '/api/v1/admin/users/nobody'), 404, 'TESSERA_USER_NOT_FOUND', 'no user named "nobody"')
    })

    t.test('an invalid username in the path is 400', async (t) => {
      assertProblem(t, await admin('GET', '/api/v1/admin/users/.hidden'), 400, 'FST_ERR_VALIDATION')
    })
  })

  t.test('update', async (t) => {
    await seedUser(app, 'erin')

    t.test('an empty body is 400', async (t) => {
      assertProblem(t, await admin('PATCH', '/api/v1/admin/users/erin', {}), 400, 'FST_ERR_VALIDATION')
    })

    t.test('an unknown property, a short password and a bad email are 400', async (t) => {
      assertProblem(t, await admin('PATCH', '/api/v1/admin/users/erin', { username: 'other' }), 400, 'FST_ERR_VALIDATION', /\(username\)/)
      assertProblem(t, await admin('PATCH', '/api/v1/admin/users/erin', { password: 'short' }), 400, 'FST_ERR_VALIDATION')
      assertProblem(t, await admin('PATCH', '/api/v1/admin/users/erin', { email: 'nope' }), 400, 'FST_ERR_VALIDATION')
    })

    t.test('an unknown user is 404', async (t) => {
      assertProblem(t, await admin('PATCH', '/api/v1/admin/users/nobody', { email: 'x@example.test' }), 404, 'TESSERA_USER_NOT_FOUND')
    })

    t.test('grant admin, set the email', async (t) => {
      const res = await admin('PATCH', '/api/v1/admin/users/erin', { admin: true, email: 'erin@example.test' })
      t.equal(res.statusCode, 200)
      t.match(res.json(), { username: 'erin', admin: true, email: 'erin@example.test', suspended: false })
      t.match((await admin('GET', '/api/v1/admin/users/erin')).json(), { admin: true, email: 'erin@example.test' })
    })

    t.test('set then remove the password', async (t) => {
      const set = await admin('PATCH', '/api/v1/admin/users/erin', { password: 'a brand new password' })
      t.equal(set.statusCode, 200)
      const selfService = await app.inject({ method: 'POST', url: '/api/v1/users/erin/tokens', headers: { authorization: basic('erin', 'a brand new password') }, payload: { name: 'with-new-password', scopes: ['read:tokens'] } })
      t.equal(selfService.statusCode, 201)
      t.equal((await admin('PATCH', '/api/v1/admin/users/erin', { password: null })).statusCode, 200)
      const rows = await app.orm.em.getConnection().execute<Array<{ password_hash: string | null }>>('select password_hash from users where username = ?', ['erin'])
      t.strictSame(rows, [{ password_hash: null }])
    })
  })

  t.test('suspension makes the user\'s tokens inactive at once on every path, cache included, until unsuspended', async (t) => {
    await seedUser(app, 'frank')
    const { token } = await seedToken(app, 'frank', { scopes: ['read:tokens'] })
    t.equal(await probe.introspect(token), true)
    t.ok(probe.isCached(token), 'the token is in the cache before the suspension')

    const suspended = await admin('PATCH', '/api/v1/admin/users/frank', { suspended: true })
    t.equal(suspended.statusCode, 200)
    t.match(suspended.json(), { username: 'frank', suspended: true, suspended_at: ISO_DATE })
    t.equal(await probe.introspect(token), false, 'introspect')
    t.equal(await probe.tokenInfo(token), 401, 'token info')
    t.strictSame(await probe.lookup(token), { active: false, reason: 'owner_suspended' }, 'admin lookup')

    const unsuspended = await admin('PATCH', '/api/v1/admin/users/frank', { suspended: false })
    t.match(unsuspended.json(), { suspended: false, suspended_at: null })
    t.equal(await probe.introspect(token), true, 'introspect')
    t.equal(await probe.tokenInfo(token), 200, 'token info')
    t.strictSame(await probe.lookup(token), { active: true, reason: null }, 'admin lookup')
  })

  t.test('suspending an already suspended user changes nothing', async (t) => {
    await seedUser(app, 'gina', { suspended: true })
    const before = (await admin('GET', '/api/v1/admin/users/gina')).json()
    const res = await admin('PATCH', '/api/v1/admin/users/gina', { suspended: true })
    t.strictSame(res.json(), before)
  })

  t.test('delete', async (t) => {
    await seedUser(app, 'harry')
    const first = await seedToken(app, 'harry')
    const second = await seedToken(app, 'harry', { scopes: ['write:tokens'] })
    t.equal(await probe.introspect(first.token), true)
    t.ok(probe.isCached(first.token), 'the token is in the cache before the deletion')

    const res = await admin('DELETE', '/api/v1/admin/users/Harry')
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.equal(await probe.introspect(first.token), false, 'the cached token is inactive')
    t.equal(await probe.introspect(second.token), false)
    t.equal(await probe.tokenInfo(first.token), 401)
    t.strictSame(await probe.lookup(first.token), { active: false, reason: 'unknown' })
    t.equal(await count(app, 'access_tokens where id in (?, ?)', [first.id, second.id]), 0, 'the tokens are gone')
    assertProblem(t, await admin('GET', '/api/v1/admin/users/harry'), 404, 'TESSERA_USER_NOT_FOUND')
    assertProblem(t, await admin('DELETE', '/api/v1/admin/users/harry'), 404, 'TESSERA_USER_NOT_FOUND')
  })

  t.test('deleting the admin who issued a token keeps the token, without its issuer', async (t) => {
    await seedUser(app, 'issuer', { admin: true })
    const issuerToken = (await seedToken(app, 'issuer', { scopes: ['admin'] })).token
    await seedUser(app, 'ivy')
    const issued = await client(app, issuerToken)('POST', '/api/v1/admin/users/ivy/tokens', { name: 'from-issuer', scopes: ['read:tokens'] })
    t.equal(issued.statusCode, 201)
    t.equal((await admin('DELETE', '/api/v1/admin/users/issuer')).statusCode, 204)
    t.match((await admin('GET', '/api/v1/admin/users/ivy/tokens')).json(), [{ name: 'from-issuer', created_by: null, state: 'active' }])
    t.equal(await probe.introspect(issued.json().token), true)
  })
})
