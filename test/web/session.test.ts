import { createHash } from 'node:crypto'
import t from 'tap'
import { AuditEvent } from '../../src/entities/audit-event.js'
import { expiryPresets } from '../../src/routes/session/tokens.js'
import { assertProblem, bearer, build, seedToken, seedUser } from '../helper.js'
import { PASSWORD, signIn } from './helper.js'

// One application for everything but the rate limits, which get their own.
const app = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '1000', RATE_LIMIT_PASSWORD_PER_IP: '1000' })
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)
const ORIGIN = 'http://localhost:80'

async function sessionCount (username: string): Promise<number> {
  const rows = await sql<{ count: string }>('select count(*) as count from web_sessions s join users u on u.id = s.user_id where u.username = ?', [username])
  return Number(rows[0]?.count)
}

async function tokenState (id: string): Promise<{ revoked_at: Date | null }> {
  const rows = await sql<{ revoked_at: Date | null }>('select revoked_at from access_tokens where id = ?', [id])
  if (rows[0] === undefined) throw new Error(`no token ${id}`)
  return rows[0]
}

function post (url: string, headers: Record<string, string>, payload?: Record<string, unknown>) {
  return app.inject({ method: 'POST', url, headers, ...(payload !== undefined ? { payload } : {}) })
}

await seedUser(app, 'alice')
await seedUser(app, 'bob')
await seedUser(app, 'root', { admin: true })
await seedUser(app, 'frozen', { suspended: true })
await seedUser(app, 'bot', { password: null })

t.test('signing in', async (t) => {
  t.test('the right password starts a session: an HttpOnly, SameSite=Strict cookie and the session with its CSRF token', async (t) => {
    const { response, secret, csrf } = await signIn(app, 'alice')
    t.equal(response.headers['cache-control'], 'no-store')
    t.match(response.headers['set-cookie'], /^tessera_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=3600$/)
    t.notMatch(String(response.headers['set-cookie']), /Secure/, 'not Secure on plain HTTP (the browser would drop it)')
    t.match(response.json(), {
      username: 'alice',
      admin: false,
      scopes: ['read:tokens', 'write:tokens'],
      created_at: String,
      expires_at: String,
      idle_timeout: 900,
      csrf_token: /^[A-Za-z0-9_-]{43}$/
    })
    t.not(csrf, secret, 'the CSRF token is not the session secret')
    const lifetime = Date.parse(response.json().expires_at) - Date.parse(response.json().created_at)
    t.equal(lifetime, 3600 * 1000, 'SESSION_LIFETIME')
  })

  t.test('only a digest of the session secret is stored', async (t) => {
    const { secret } = await signIn(app, 'alice')
    const digest = createHash('sha256').update(secret).digest('hex')
    const rows = await sql<Record<string, unknown>>('select * from web_sessions where digest = ?', [digest])
    t.equal(rows.length, 1, 'found by its SHA-256 digest')
    t.notOk(JSON.stringify(rows[0]).includes(secret), 'the secret itself is nowhere in the row')
  })

  t.test('the username is case-insensitive', async (t) => {
    const { response } = await signIn(app, 'ALICE')
    t.equal(response.json().username, 'alice')
  })

  t.test('behind HTTPS the cookie is Secure and __Host- prefixed', async (t) => {
    const secure = await build(t, { PUBLIC_URL: 'https://tessera.example' })
    await seedUser(secure, 'carol')
    const res = await secure.inject({ method: 'POST', url: '/api/v1/session', headers: { origin: 'https://tessera.example' }, payload: { username: 'carol', password: PASSWORD } })
    t.equal(res.statusCode, 201)
    t.match(res.headers['set-cookie'], /^__Host-tessera_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure; Max-Age=3600$/)
  })

  t.test('missing fields are a 400 naming each one, and nothing is written', async (t) => {
    const before = await sessionCount('alice')
    const empty = await post('/api/v1/session', {}, {})
    assertProblem(t, empty, 400, 'FST_ERR_VALIDATION')
    t.match(empty.json().errors, [{ path: 'body', message: /username/ }, { path: 'body', message: /password/ }])
    assertProblem(t, await post('/api/v1/session', {}, { username: 'alice' }), 400, 'FST_ERR_VALIDATION', /must have required property 'password'/)
    assertProblem(t, await post('/api/v1/session', {}, { password: PASSWORD }), 400, 'FST_ERR_VALIDATION', /must have required property 'username'/)
    assertProblem(t, await post('/api/v1/session', {}, { username: '', password: PASSWORD }), 400, 'FST_ERR_VALIDATION', /body\/username must NOT have fewer than 1 characters/)
    assertProblem(t, await post('/api/v1/session', {}, { username: 'alice', password: PASSWORD, remember: true }), 400, 'FST_ERR_VALIDATION', /must NOT have additional properties \(remember\)/)
    const noBody = await app.inject({ method: 'POST', url: '/api/v1/session' })
    t.equal(noBody.statusCode, 400)
    t.equal(await sessionCount('alice'), before, 'no session was created')
  })

  t.test('a wrong password is a 401, audited, with no cookie', async (t) => {
    const res = await post('/api/v1/session', {}, { username: 'alice', password: 'wrong password' })
    assertProblem(t, res, 401, 'TESSERA_SIGN_IN_FAILED', 'invalid username or password')
    t.equal(res.headers['set-cookie'], undefined)
    const deadline = Date.now() + 3000
    let events: AuditEvent[] = []
    while (events.length === 0 && Date.now() < deadline) {
      events = await app.orm.em.fork().find(AuditEvent, { action: 'auth.failed', target: 'alice' })
      if (events.length === 0) await new Promise((resolve) => setTimeout(resolve, 25))
    }
    t.match(events[0], { actor: 'alice', details: { reason: 'invalid username or password (web sign-in)', route: '/api/v1/session' } })
  })

  t.test('an unknown user, a malformed username and a password-less account all get the same 401', async (t) => {
    const wrong = await post('/api/v1/session', {}, { username: 'alice', password: 'wrong password' })
    for (const username of ['ghost', 'not a username!', 'bot']) {
      const res = await post('/api/v1/session', {}, { username, password: PASSWORD })
      t.equal(res.statusCode, 401, username)
      t.equal(res.json().detail, wrong.json().detail)
    }
  })

  t.test('a suspended account is refused after its password is checked, and gets no session', async (t) => {
    assertProblem(t, await post('/api/v1/session', {}, { username: 'frozen', password: PASSWORD }), 403, 'TESSERA_ACCOUNT_SUSPENDED', 'the account frozen is suspended')
    t.equal(await sessionCount('frozen'), 0)
    assertProblem(t, await post('/api/v1/session', {}, { username: 'frozen', password: 'wrong password' }), 401, 'TESSERA_SIGN_IN_FAILED', 'invalid username or password')
  })

  t.test('a sign-in sent from another origin is refused (login CSRF)', async (t) => {
    const before = await sessionCount('alice')
    assertProblem(t, await post('/api/v1/session', { origin: 'http://evil.example' }, { username: 'alice', password: PASSWORD }), 403, 'TESSERA_CROSS_ORIGIN',
      'cross-origin request refused: Origin http://evil.example is not this server\'s origin http://localhost:80 (behind a proxy, set PUBLIC_URL)')
    assertProblem(t, await post('/api/v1/session', { 'sec-fetch-site': 'cross-site' }, { username: 'alice', password: PASSWORD }), 403, 'TESSERA_CROSS_ORIGIN', /Sec-Fetch-Site: cross-site/)
    assertProblem(t, await post('/api/v1/session', { 'sec-fetch-site': 'same-site' }, { username: 'alice', password: PASSWORD }), 403, 'TESSERA_CROSS_ORIGIN', /Sec-Fetch-Site: same-site/)
    t.equal(await sessionCount('alice'), before)
    const same = await post('/api/v1/session', { origin: ORIGIN, 'sec-fetch-site': 'same-origin' }, { username: 'alice', password: PASSWORD })
    t.equal(same.statusCode, 201, 'from this origin it works')
  })

  t.test('signing in again replaces the browser\'s previous session', async (t) => {
    const first = await signIn(app, 'bob')
    const second = await signIn(app, 'bob', PASSWORD, { cookie: first.cookie })
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie: first.cookie } }), 401, 'TESSERA_SESSION_ENDED')
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie: second.cookie } })).statusCode, 200)
  })

  t.test('with password authentication disabled, sign-in is a clear 403', async (t) => {
    const sso = await build(t, { BASIC_AUTH_ENABLED: 'false' })
    await seedUser(sso, 'dave')
    const res = await sso.inject({ method: 'POST', url: '/api/v1/session', payload: { username: 'dave', password: PASSWORD } })
    assertProblem(t, res, 403, 'TESSERA_PASSWORD_SIGN_IN_DISABLED', /BASIC_AUTH_ENABLED=false/)
    const policy = await sso.inject({ method: 'GET', url: '/api/v1/token-policy' })
    t.equal(policy.json().password_sign_in, false)
  })
})

t.test('sign-in attempts are rate limited as password attempts are: per username and, separately, per address', async (t) => {
  const limited = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '3', RATE_LIMIT_PASSWORD_PER_IP: '5' })
  await seedUser(limited, 'erin')
  const attempt = (username: string, ip = '127.0.0.1') => limited.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: ip, payload: { username, password: 'wrong password' } })
  for (let i = 0; i < 3; i++) t.equal((await attempt('erin')).statusCode, 401)
  const res = await attempt('ERIN', '10.0.0.2')
  assertProblem(t, res, 429, 'TESSERA_RATE_LIMITED', /^too many attempts: at most 3 in 60 seconds/)
  t.match(res.headers['retry-after'], /^\d+$/)
  const right = await limited.inject({ method: 'POST', url: '/api/v1/session', remoteAddress: '10.0.0.3', payload: { username: 'erin', password: PASSWORD } })
  t.equal(right.statusCode, 429, 'even the right password waits: no guessing past the limit')
  for (let i = 0; i < 5; i++) await attempt(`user${i}`, '10.0.0.9')
  assertProblem(t, await attempt('someone-else', '10.0.0.9'), 429, 'TESSERA_RATE_LIMITED', /at most 5 in 60 seconds/)
})

t.test('the current session', async (t) => {
  t.test('without a cookie: 401, not signed in', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/session' })
    assertProblem(t, res, 401, 'TESSERA_NOT_SIGNED_IN', 'not signed in: sign in with POST /api/v1/session (username and password)')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="tessera"')
  })

  t.test('with the cookie: the session and the same CSRF token, never cached', async (t) => {
    const { cookie, csrf } = await signIn(app, 'alice')
    const res = await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(res.json(), { username: 'alice', csrf_token: csrf })
  })

  t.test('a malformed or unknown cookie: 401 session ended', async (t) => {
    for (const value of ['garbage', 'A'.repeat(43), '']) {
      const res = await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie: `tessera_session=${value}` } })
      assertProblem(t, res, 401, value === '' ? 'TESSERA_NOT_SIGNED_IN' : 'TESSERA_SESSION_ENDED')
    }
  })

  t.test('a session past its lifetime ends, and its row is deleted', async (t) => {
    const { cookie, secret } = await signIn(app, 'alice')
    const digest = createHash('sha256').update(secret).digest('hex')
    await sql('update web_sessions set expires_at = now() - interval \'1 second\' where digest = ?', [digest])
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie } }), 401, 'TESSERA_SESSION_ENDED',
      'your session reached its maximum lifetime of 3600 seconds; sign in again')
    t.equal((await sql('select 1 from web_sessions where digest = ?', [digest])).length, 0)
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } }), 401, 'TESSERA_SESSION_ENDED', /signed out, expired or unknown/)
  })

  t.test('a session idle for longer than SESSION_IDLE_TIMEOUT ends', async (t) => {
    const { cookie, secret } = await signIn(app, 'alice')
    await sql('update web_sessions set last_seen_at = now() - interval \'901 seconds\' where digest = ?', [createHash('sha256').update(secret).digest('hex')])
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } }), 401, 'TESSERA_SESSION_ENDED',
      'your session ended after 900 seconds without activity; sign in again')
  })

  t.test('a request keeps the session alive (last_seen_at moves, at most once a minute)', async (t) => {
    const { cookie, secret } = await signIn(app, 'alice')
    const digest = createHash('sha256').update(secret).digest('hex')
    await sql('update web_sessions set last_seen_at = now() - interval \'600 seconds\' where digest = ?', [digest])
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } })).statusCode, 200)
    const rows = await sql<{ idle: number }>('select extract(epoch from now() - last_seen_at) as idle from web_sessions where digest = ?', [digest])
    t.ok(Number(rows[0]?.idle) < 5, 'touched')
  })

  t.test('suspending the user ends their sessions at the next request', async (t) => {
    await seedUser(app, 'gina')
    const { cookie } = await signIn(app, 'gina')
    await sql('update users set suspended_at = now() where username = ?', ['gina'])
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie } }), 401, 'TESSERA_SESSION_ENDED', 'the account gina is suspended; its sessions have ended')
  })
})

t.test('the session as the principal of the token routes', async (t) => {
  const { cookie, csrf } = await signIn(app, 'alice')
  const same = { cookie, origin: ORIGIN, 'sec-fetch-site': 'same-origin', 'x-csrf-token': csrf }

  t.test('it lists, shows, invalidates and rotates the user\'s own tokens', async (t) => {
    const listed = await seedToken(app, 'alice', { name: 'listed', scopes: ['read:repository'] })
    const list = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie } })
    t.equal(list.statusCode, 200)
    t.ok(list.json().some((view: { id: string }) => view.id === listed.id))
    t.equal((await app.inject({ method: 'GET', url: `/api/v1/tokens/${listed.id}`, headers: { cookie } })).statusCode, 200)
    const rotated = await post(`/api/v1/tokens/${listed.id}/rotate`, same, {})
    t.equal(rotated.statusCode, 201)
    t.equal(rotated.headers['cache-control'], 'no-store')
    const invalidated = await post(`/api/v1/tokens/${rotated.json().id as string}/invalidate`, same)
    t.equal(invalidated.statusCode, 200)
    t.equal(invalidated.json().state, 'revoked')
  })

  t.test('another user\'s token is a 404, as with a bearer token', async (t) => {
    const bobs = await seedToken(app, 'bob', { name: 'bobs' })
    assertProblem(t, await app.inject({ method: 'GET', url: `/api/v1/tokens/${bobs.id}`, headers: { cookie } }), 404, 'TESSERA_TOKEN_NOT_FOUND')
    assertProblem(t, await post(`/api/v1/tokens/${bobs.id}/invalidate`, same), 404, 'TESSERA_TOKEN_NOT_FOUND')
    t.equal((await tokenState(bobs.id)).revoked_at, null)
  })

  t.test('a state-changing request without the CSRF token is refused, and changes nothing', async (t) => {
    const victim = await seedToken(app, 'alice', { name: 'csrf-victim-1' })
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { cookie }), 403, 'TESSERA_CSRF_TOKEN_MISSING',
      'a state-changing request with the session cookie needs the session\'s CSRF token in the X-CSRF-Token header')
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { cookie, 'x-csrf-token': '' }), 403, 'TESSERA_CSRF_TOKEN_MISSING')
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/rotate`, { cookie }, {}), 403, 'TESSERA_CSRF_TOKEN_MISSING')
    t.equal((await tokenState(victim.id)).revoked_at, null, 'still alive')
  })

  t.test('a wrong CSRF token, or another session\'s, is refused', async (t) => {
    const victim = await seedToken(app, 'alice', { name: 'csrf-victim-2' })
    const other = await signIn(app, 'bob')
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { cookie, 'x-csrf-token': 'forged' }), 403, 'TESSERA_CSRF_TOKEN_INVALID',
      'the X-CSRF-Token header does not match this session\'s CSRF token; reload the page')
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { cookie, 'x-csrf-token': other.csrf }), 403, 'TESSERA_CSRF_TOKEN_INVALID')
    t.equal((await tokenState(victim.id)).revoked_at, null)
  })

  t.test('a request from another origin is refused even with the right CSRF token', async (t) => {
    const victim = await seedToken(app, 'alice', { name: 'csrf-victim-3' })
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { ...same, origin: 'http://localhost:8080' }), 403, 'TESSERA_CROSS_ORIGIN',
      /^cross-origin request refused: Origin http:\/\/localhost:8080 is not this server's origin http:\/\/localhost:80/)
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { ...same, origin: 'null' }), 403, 'TESSERA_CROSS_ORIGIN')
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { ...same, 'sec-fetch-site': 'same-site' }), 403, 'TESSERA_CROSS_ORIGIN', /Sec-Fetch-Site: same-site/)
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { ...same, 'sec-fetch-site': 'none' }), 403, 'TESSERA_CROSS_ORIGIN', /Sec-Fetch-Site: none/)
    t.equal((await tokenState(victim.id)).revoked_at, null)
  })

  t.test('reading from another site is refused too (fetch metadata), reading from the address bar is not', async (t) => {
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie, 'sec-fetch-site': 'cross-site' } }), 403, 'TESSERA_CROSS_ORIGIN')
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie, 'sec-fetch-site': 'none' } })).statusCode, 200)
  })

  t.test('with PUBLIC_URL set, that is the one origin accepted', async (t) => {
    const proxied = await build(t, { PUBLIC_URL: 'https://tessera.example/' })
    await seedUser(proxied, 'hank')
    const res = await proxied.inject({ method: 'POST', url: '/api/v1/session', headers: { origin: 'http://localhost:80' }, payload: { username: 'hank', password: PASSWORD } })
    assertProblem(t, res, 403, 'TESSERA_CROSS_ORIGIN', 'cross-origin request refused: Origin http://localhost:80 is not this server\'s origin https://tessera.example')
  })

  t.test('a session never reaches the admin routes, even an admin\'s', async (t) => {
    const root = await signIn(app, 'root')
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/admin/users', headers: { cookie: root.cookie } }), 403, 'TESSERA_SESSION_SCOPE_EXCEEDED',
      'a web session cannot use this route: it needs a bearer token with the admin scope')
  })

  t.test('an Authorization header wins over the cookie: the bearer token alone decides', async (t) => {
    const reader = await seedToken(app, 'alice', { name: 'reader-only', scopes: ['read:tokens'] })
    const victim = await seedToken(app, 'alice', { name: 'csrf-victim-4' })
    assertProblem(t, await post(`/api/v1/tokens/${victim.id}/invalidate`, { ...same, authorization: bearer(reader.token) }), 403, 'TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the write:tokens scope')
    t.equal((await tokenState(victim.id)).revoked_at, null)
  })

  t.test('the Forgejo-style routes stay Basic-or-bearer: the cookie alone is not enough', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/users/alice/tokens', headers: { cookie } })
    t.equal(res.statusCode, 401)
  })
})

t.test('creating a token from the session: POST /api/v1/tokens', async (t) => {
  const { cookie, csrf } = await signIn(app, 'alice')
  const headers = { cookie, 'x-csrf-token': csrf }
  const count = async (): Promise<number> => Number((await sql<{ count: string }>('select count(*) as count from access_tokens'))[0]?.count)

  t.test('answers the plaintext once, like the password route, and audits it as the user', async (t) => {
    const res = await post('/api/v1/tokens', headers, { name: 'from-the-page', scopes: ['read:repository'], audience: ['git'], expires_in: 86400 })
    t.equal(res.statusCode, 201)
    t.equal(res.headers['cache-control'], 'no-store')
    const body = res.json()
    t.match(body, { name: 'from-the-page', scopes: ['read:repository'], audience: ['git'], token: /^tsr_/, token_last_eight: String })
    t.equal(body.sha1, body.token)
    const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(body.token) } })
    t.equal(info.statusCode, 200, 'the new token works')
    const events = await app.orm.em.fork().find(AuditEvent, { action: 'token.created', targetId: body.id })
    t.match(events, [{ actor: 'alice', ip: '127.0.0.1' }])
  })

  t.test('bad input is a 400 naming the problem, and writes nothing', async (t) => {
    const before = await count()
    assertProblem(t, await post('/api/v1/tokens', headers, { name: 'x' }), 400, 'FST_ERR_VALIDATION', /must have required property 'scopes'/)
    assertProblem(t, await post('/api/v1/tokens', headers, { scopes: ['read:tokens'] }), 400, 'FST_ERR_VALIDATION', /must have required property 'name'/)
    assertProblem(t, await post('/api/v1/tokens', headers, { name: 'x', scopes: ['fly'] }), 400, 'TESSERA_INVALID_SCOPE', /unknown scope fly; valid scopes are: /)
    assertProblem(t, await post('/api/v1/tokens', headers, { name: 'x', scopes: ['admin'] }), 403, 'TESSERA_ADMIN_SCOPE_FORBIDDEN', 'only administrators may hold a token with the admin scope')
    assertProblem(t, await post('/api/v1/tokens', headers, { name: 'x', scopes: ['read:tokens'], expires_in: 400 * 86400 }), 400, 'TESSERA_LIFETIME_TOO_LONG', /exceeds the maximum of 31536000 seconds/)
    t.equal(await count(), before)
  })

  t.test('a duplicate live name is a 409', async (t) => {
    t.equal((await post('/api/v1/tokens', headers, { name: 'twice', scopes: ['read:tokens'] })).statusCode, 201)
    assertProblem(t, await post('/api/v1/tokens', headers, { name: 'twice', scopes: ['read:tokens'] }), 409, 'TESSERA_TOKEN_NAME_TAKEN')
  })

  t.test('a token cannot mint a token, not even with write:tokens', async (t) => {
    const writer = await seedToken(app, 'alice', { name: 'writer', scopes: ['write:tokens'] })
    assertProblem(t, await post('/api/v1/tokens', { authorization: bearer(writer.token) }, { name: 'minted', scopes: ['read:tokens'] }), 403, 'TESSERA_TOKEN_CANNOT_MINT', /^a token cannot create tokens/)
  })

  t.test('anonymous is a 401; the CSRF token is required', async (t) => {
    assertProblem(t, await post('/api/v1/tokens', {}, { name: 'anon', scopes: ['read:tokens'] }), 401, 'TESSERA_TOKEN_REQUIRED')
    assertProblem(t, await post('/api/v1/tokens', { cookie }, { name: 'no-csrf', scopes: ['read:tokens'] }), 403, 'TESSERA_CSRF_TOKEN_MISSING')
  })

  t.test('without the first-party application: a clear 503, and the policy says so', async (t) => {
    const bare = await build(t, {}, { internalApp: false })
    await seedUser(bare, 'ivy')
    const session = await signIn(bare, 'ivy')
    const res = await bare.inject({ method: 'POST', url: '/api/v1/tokens', headers: { cookie: session.cookie, 'x-csrf-token': session.csrf }, payload: { name: 'x', scopes: ['read:tokens'] } })
    assertProblem(t, res, 503, 'TESSERA_INTERNAL_APP_MISSING', /tessera ensure-internal-app/)
    t.equal((await bare.inject({ method: 'GET', url: '/api/v1/token-policy' })).json().internal_application, false)
  })
})

t.test('signing out', async (t) => {
  t.test('needs the CSRF token; then the session is gone and its cookie cleared', async (t) => {
    const { cookie, csrf } = await signIn(app, 'alice')
    assertProblem(t, await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie } }), 403, 'TESSERA_CSRF_TOKEN_MISSING')
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } })).statusCode, 200, 'a forged sign-out changes nothing')
    const res = await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': csrf } })
    t.equal(res.statusCode, 204)
    t.equal(res.headers['set-cookie'], 'tessera_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0')
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie } }), 401, 'TESSERA_SESSION_ENDED')
    assertProblem(t, await app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': csrf } }), 401, 'TESSERA_SESSION_ENDED')
  })

  t.test('without a session: 401', async (t) => {
    assertProblem(t, await app.inject({ method: 'DELETE', url: '/api/v1/session' }), 401, 'TESSERA_NOT_SIGNED_IN')
  })

  t.test('deleting the user deletes their sessions', async (t) => {
    await seedUser(app, 'jay')
    await signIn(app, 'jay')
    t.equal(await sessionCount('jay'), 1)
    await sql('delete from users where username = ?', ['jay'])
    t.equal((await sql('select 1 from web_sessions s left join users u on u.id = s.user_id where u.id is null')).length, 0)
  })
})

t.test('the token policy', async (t) => {
  t.test('lists the scopes with their descriptions and the lifetimes on offer', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/token-policy' })
    t.equal(res.statusCode, 200)
    const policy = res.json()
    t.match(policy.scopes, [{ name: 'admin' }, { name: 'introspect' }, { name: 'read:repository' }, { name: 'read:tokens', description: 'Review the owner\'s own tokens' }, { name: 'write:repository' }, { name: 'write:tokens' }])
    t.strictSame(policy.expiry_presets.map((preset: { expires_in: number }) => preset.expires_in), [86400, 604800, 2592000, 7776000, 31536000])
    t.match(policy, { default_lifetime: 7776000, max_lifetime: 31536000, last_used_precision: 60, rotation_max_grace: 86400, internal_application: true, password_sign_in: true })
    t.strictSame(policy.expiry_notice_days, [30, 7, 1], 'TOKEN_EXPIRY_NOTICE_DAYS, largest first')
  })

  t.test('presets stay within the maximum, offer the default and the maximum, and "never" only without a maximum', async (t) => {
    t.strictSame(expiryPresets({ defaultLifetime: 3600, maxLifetime: 7200 }), [
      { label: '1 hour', expires_in: 3600, default: true },
      { label: '2 hours (the maximum)', expires_in: 7200, default: false }
    ])
    t.strictSame(expiryPresets({ defaultLifetime: 45 * 86400, maxLifetime: 60 * 86400 }).map((preset) => preset.label),
      ['1 day', '7 days', '30 days', '45 days', '60 days (the maximum)'])
    t.strictSame(expiryPresets({ defaultLifetime: 0, maxLifetime: 0 }).at(-1), { label: 'Never', expires_in: null, default: true })
    t.strictSame(expiryPresets({ defaultLifetime: 86400, maxLifetime: 0 }).filter((preset) => preset.default), [{ label: '1 day', expires_in: 86400, default: true }])
  })
})

t.test('the page and its assets', async (t) => {
  t.test('/settings/tokens is HTML with a strict CSP, no framing, no referrer, never cached', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/settings/tokens' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'text/html; charset=utf-8')
    t.equal(res.headers['content-security-policy'], "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'")
    t.equal(res.headers['x-frame-options'], 'DENY')
    t.equal(res.headers['referrer-policy'], 'no-referrer')
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.headers['cache-control'], 'no-store')
    t.notMatch(res.body, /<script>|<style>| style=| on[a-z]+=|https?:\/\//, 'no inline script or style, no event attributes, no external URL')
    t.match(res.body, /<script type="module" src="\/settings\/assets\/app.js"><\/script>/)
  })

  t.test('the script and the stylesheet are served with their types and revalidate by ETag', async (t) => {
    const js = await app.inject({ method: 'GET', url: '/settings/assets/app.js' })
    t.equal(js.headers['content-type'], 'text/javascript; charset=utf-8')
    t.equal(js.headers['cache-control'], 'no-cache')
    t.notMatch(js.body, /innerHTML|outerHTML|insertAdjacentHTML|eval\(|localStorage|sessionStorage/, 'no HTML sinks, nothing persisted in the browser')
    const css = await app.inject({ method: 'GET', url: '/settings/assets/app.css' })
    t.equal(css.headers['content-type'], 'text/css; charset=utf-8')
    const again = await app.inject({ method: 'GET', url: '/settings/assets/app.css', headers: { 'if-none-match': String(css.headers.etag) } })
    t.equal(again.statusCode, 304)
    t.equal(again.body, '')
  })

  t.test('/settings leads to the page; nothing else under /settings/assets exists', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/settings' })
    t.equal(res.statusCode, 302)
    t.equal(res.headers.location, '/settings/tokens')
    t.equal((await app.inject({ method: 'GET', url: '/settings/assets/../../package.json' })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: '/settings/assets/index.html' })).statusCode, 404)
  })

  t.test('the API documents the session routes with the cookie and CSRF schemes', async (t) => {
    const document = (await app.inject({ method: 'GET', url: '/documentation/json' })).json()
    t.strictSame(document.paths['/api/v1/session'].post.security, [])
    t.strictSame(document.paths['/api/v1/session'].get.security, [{ sessionCookie: [] }])
    t.strictSame(document.paths['/api/v1/session'].delete.security, [{ sessionCookie: [], csrfToken: [] }])
    t.strictSame(document.paths['/api/v1/tokens'].post.security, [{ sessionCookie: [], csrfToken: [] }])
    t.match(document.components.securitySchemes, { sessionCookie: { type: 'apiKey', in: 'cookie' }, csrfToken: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token' } })
    t.equal(document.paths['/settings/tokens'], undefined, 'the page itself is not an API route')
  })
})
