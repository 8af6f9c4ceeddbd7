import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { AuditEvent } from '../../../src/entities/audit-event.js'
import { isWellFormedToken } from '../../../src/services/token-format.js'
import { assertProblem, basic, bearer, build, seedToken, seedUser } from '../../helper.js'

const PASSWORD = 'correct horse battery'
const VALID_SCOPES = 'admin introspect read:repository read:tokens write:repository write:tokens'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'

interface CreateOptions {
  authorization?: string | null
  remoteAddress?: string
}

async function createToken (app: FastifyInstance, username: string, payload: unknown, options: CreateOptions = {}): Promise<LightMyRequestResponse> {
  const authorization = options.authorization === undefined ? basic(username, PASSWORD) : options.authorization
  return await app.inject({
    method: 'POST',
    url: `/api/v1/users/${username}/tokens`,
    headers: authorization === null ? {} : { authorization },
    payload: payload as Record<string, unknown>,
    ...(options.remoteAddress !== undefined ? { remoteAddress: options.remoteAddress } : {})
  })
}

async function countTokens (app: FastifyInstance): Promise<number> {
  const rows = await app.orm.em.getConnection().execute<Array<{ n: number }>>('select count(*)::int as n from access_tokens')
  return rows[0]?.n ?? -1
}

async function auditEvents (app: FastifyInstance, action: string, where: Record<string, unknown> = {}): Promise<AuditEvent[]> {
  return await app.orm.em.fork().find(AuditEvent, { action, ...where })
}

/** `auth.failed` is written after the response (best effort), so wait for it briefly. */
async function waitForAuditEvents (app: FastifyInstance, action: string, where: Record<string, unknown>, count: number): Promise<AuditEvent[]> {
  const deadline = Date.now() + 3000
  let events = await auditEvents(app, action, where)
  while (events.length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25))
    events = await auditEvents(app, action, where)
  }
  return events
}

// Every validation case below runs against one application; the password rate limits are
// raised so that the number of cases cannot trip them (they have their own test).
const app = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '1000', RATE_LIMIT_PASSWORD_PER_IP: '1000' })
await seedUser(app, 'alice')
await seedUser(app, 'bob')
await seedUser(app, 'root', { admin: true })
await seedUser(app, 'bot', { password: null })
await seedUser(app, 'mallory', { suspended: true })

t.test('the owner creates a token with Basic auth and gets the plaintext once', async (t) => {
  const before = Date.now()
  const res = await createToken(app, 'alice', { name: 'deploy', scopes: ['read:repository', 'read:tokens'], audience: ['https://git.example'], expires_in: 3600 })
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.strictSame(Object.keys(body).sort(), ['audience', 'created_at', 'expires_at', 'id', 'name', 'scopes', 'sha1', 'token', 'token_last_eight'])
  t.match(body.id, UUID)
  t.equal(body.name, 'deploy')
  t.ok(isWellFormedToken(body.token, 'tsr'), 'the token is well formed')
  t.equal(body.sha1, body.token, 'sha1 is the plaintext, as Forgejo names it')
  t.equal(body.token_last_eight, body.token.slice(-8))
  t.strictSame(body.scopes, ['read:repository', 'read:tokens'])
  t.strictSame(body.audience, ['https://git.example'])
  t.match(body.created_at, ISO_DATE)
  t.match(body.expires_at, ISO_DATE)
  const lifetime = Date.parse(body.expires_at) - Date.parse(body.created_at)
  t.ok(lifetime >= 3599_000 && lifetime <= 3601_000, `expires one hour after creation (${lifetime} ms)`)
  t.ok(Date.parse(body.created_at) >= before - 1000 && Date.parse(body.created_at) <= Date.now() + 1000, 'created now')

  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(body.token) } })
  t.equal(info.statusCode, 200)
  const owner = (await app.orm.em.fork().getConnection().execute<Array<{ id: string }>>('select id from users where username = ?', ['alice']))[0]
  t.match(info.json(), { resource_owner_id: owner?.id, scope: ['read:repository', 'read:tokens'], application: { uid: 'internal' } })

  const events = await auditEvents(app, 'token.created', { targetId: body.id })
  t.equal(events.length, 1, 'one token.created audit event')
  t.match(events[0], { actorId: owner?.id, actor: 'alice', targetType: 'token', target: 'deploy', ip: '127.0.0.1', details: { owner: 'alice', client_id: 'internal', scopes: ['read:repository', 'read:tokens'] } })
})

t.test('without an expiry the token gets the default lifetime and no audience', async (t) => {
  const res = await createToken(app, 'alice', { name: 'defaults', scopes: ['read:tokens'] })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.equal(body.audience, null)
  const lifetime = (Date.parse(body.expires_at) - Date.parse(body.created_at)) / 1000
  t.ok(Math.abs(lifetime - 7776000) <= 1, `default lifetime of 90 days (${lifetime} s)`)
})

t.test('the username in the path is case-insensitive', async (t) => {
  const res = await createToken(app, 'ALICE', { name: 'upper', scopes: ['read:tokens'] }, { authorization: basic('Alice', PASSWORD) })
  t.equal(res.statusCode, 201)
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(res.json().token) } })
  t.equal(info.statusCode, 200)
})

t.test('an admin may hold a token with the admin scope', async (t) => {
  const res = await createToken(app, 'root', { name: 'ops', scopes: ['admin'] })
  t.equal(res.statusCode, 201)
  t.strictSame(res.json().scopes, ['admin'])
})

t.test('authentication', async (t) => {
  const before = await countTokens(app)
  t.test('no Authorization header is a 401 with a Basic challenge', async (t) => {
    const res = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'] }, { authorization: null })
    assertProblem(t, res, 401, 'TESSERA_PASSWORD_REQUIRED', 'Basic authentication with the user\'s username and password is required')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('a wrong password is a 401 and an auth.failed audit event', async (t) => {
    const res = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'] }, { authorization: basic('alice', 'wrong password') })
    assertProblem(t, res, 401, 'TESSERA_INVALID_PASSWORD', 'invalid username or password')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    const events = await waitForAuditEvents(app, 'auth.failed', { target: 'alice' }, 1)
    t.equal(events.length, 1)
    t.match(events[0], { actorId: null, actor: 'alice', targetType: 'credential', ip: '127.0.0.1', details: { reason: 'invalid username or password', route: '/api/v1/users/:username/tokens' } })
  })

  t.test('an unknown user gets the same answer as a wrong password', async (t) => {
    const wrong = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'] }, { authorization: basic('alice', 'wrong password') })
    const unknown = await createToken(app, 'ghost', { name: 'x', scopes: ['read:tokens'] })
    t.equal(unknown.statusCode, 401)
    t.equal(unknown.headers['www-authenticate'], wrong.headers['www-authenticate'])
    const { instance: _wrongId, ...wrongBody } = wrong.json()
    const { instance: _unknownId, ...unknownBody } = unknown.json()
    t.strictSame(unknownBody, wrongBody)
    const events = await waitForAuditEvents(app, 'auth.failed', { target: 'ghost' }, 1)
    t.equal(events.length, 1, 'the attempt is audited too')
  })

  t.test('a user without a password cannot use Basic auth', async (t) => {
    const res = await createToken(app, 'bot', { name: 'x', scopes: ['read:tokens'] }, { authorization: basic('bot', '') })
    assertProblem(t, res, 401, 'TESSERA_INVALID_PASSWORD', 'invalid username or password')
    const guessed = await createToken(app, 'bot', { name: 'x', scopes: ['read:tokens'] })
    assertProblem(t, guessed, 401, 'TESSERA_INVALID_PASSWORD', 'invalid username or password')
  })

  t.test('a suspended user with the right password is a 403', async (t) => {
    const res = await createToken(app, 'mallory', { name: 'x', scopes: ['read:tokens'] })
    assertProblem(t, res, 403, 'TESSERA_ACCOUNT_SUSPENDED', 'the account mallory is suspended')
  })

  t.test('one user\'s credentials on another user\'s path are a 403', async (t) => {
    const res = await createToken(app, 'bob', { name: 'x', scopes: ['read:tokens'] }, { authorization: basic('alice', PASSWORD) })
    assertProblem(t, res, 403, 'TESSERA_CREDENTIALS_OF_ANOTHER_USER', 'the credentials are not those of bob')
  })

  t.test('a bearer token cannot create tokens', async (t) => {
    const { token } = await seedToken(app, 'alice', { scopes: ['write:tokens'] })
    const res = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'] }, { authorization: bearer(token) })
    assertProblem(t, res, 403, 'TESSERA_TOKEN_CANNOT_MINT', /^a token cannot create tokens/)
  })

  t.test('an unsupported scheme is a 401 with a Basic challenge', async (t) => {
    const res = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'] }, { authorization: 'Digest username="alice"' })
    assertProblem(t, res, 401, 'TESSERA_PASSWORD_REQUIRED', /Basic authentication/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('no refused attempt wrote a token', async (t) => {
    t.equal(await countTokens(app), before + 1, 'only the bearer token seeded above')
  })
})

t.test('invalid requests are 400 problems that name the field, and write nothing', async (t) => {
  const cases: Array<{ title: string, username?: string, payload: unknown, code?: string, detail: string | RegExp }> = [
    { title: 'missing name', payload: { scopes: ['read:tokens'] }, detail: 'body must have required property \'name\'' },
    { title: 'empty name', payload: { name: '', scopes: ['read:tokens'] }, detail: 'body/name must NOT have fewer than 1 characters' },
    { title: 'a name of only spaces', payload: { name: '   ', scopes: ['read:tokens'] }, code: 'TESSERA_INVALID_TOKEN_NAME', detail: 'name must be 1–100 characters (not only spaces)' },
    { title: 'a name over 100 characters', payload: { name: 'n'.repeat(101), scopes: ['read:tokens'] }, detail: 'body/name must NOT have more than 100 characters' },
    { title: 'missing scopes', payload: { name: 'x' }, detail: 'body must have required property \'scopes\'' },
    { title: 'an empty scope list', payload: { name: 'x', scopes: [] }, detail: 'body/scopes must NOT have fewer than 1 items' },
    { title: 'an unknown scope', payload: { name: 'x', scopes: ['read:tokens', 'launch:missiles'] }, code: 'TESSERA_INVALID_SCOPE', detail: `unknown scope launch:missiles; valid scopes are: ${VALID_SCOPES}` },
    { title: 'scopes as an object', payload: { name: 'x', scopes: { 'read:tokens': true } }, detail: 'body/scopes must be array' },
    { title: 'both expires_at and expires_in', payload: { name: 'x', scopes: ['read:tokens'], expires_at: new Date(Date.now() + 3600_000).toISOString(), expires_in: 3600 }, code: 'TESSERA_EXPIRY_CONFLICT', detail: 'give either expires_at or expires_in, not both' },
    { title: 'expires_at in the past', payload: { name: 'x', scopes: ['read:tokens'], expires_at: new Date(Date.now() - 60_000).toISOString() }, code: 'TESSERA_EXPIRY_IN_PAST', detail: 'expires_at must be in the future' },
    { title: 'expires_at that is not a date', payload: { name: 'x', scopes: ['read:tokens'], expires_at: 'next tuesday' }, detail: /^body\/expires_at must match format "date-time"/ },
    { title: 'expires_in of 0', payload: { name: 'x', scopes: ['read:tokens'], expires_in: 0 }, detail: 'body/expires_in must be >= 1' },
    { title: 'a negative expires_in', payload: { name: 'x', scopes: ['read:tokens'], expires_in: -60 }, detail: 'body/expires_in must be >= 1' },
    { title: 'a fractional expires_in', payload: { name: 'x', scopes: ['read:tokens'], expires_in: 1.5 }, detail: 'body/expires_in must be integer' },
    { title: 'a lifetime beyond TOKEN_MAX_LIFETIME', payload: { name: 'x', scopes: ['read:tokens'], expires_in: 31536000 + 60 }, code: 'TESSERA_LIFETIME_TOO_LONG', detail: 'the token lifetime exceeds the maximum of 31536000 seconds' },
    { title: 'an expires_at beyond TOKEN_MAX_LIFETIME', payload: { name: 'x', scopes: ['read:tokens'], expires_at: new Date(Date.now() + (31536000 + 60) * 1000).toISOString() }, code: 'TESSERA_LIFETIME_TOO_LONG', detail: 'the token lifetime exceeds the maximum of 31536000 seconds' },
    { title: 'a token that never expires while a maximum lifetime is set', payload: { name: 'x', scopes: ['read:tokens'], expires_at: null }, code: 'TESSERA_EXPIRY_REQUIRED', detail: 'tokens must expire on this server: the maximum lifetime is 31536000 seconds' },
    { title: 'an unknown extra property', payload: { name: 'x', scopes: ['read:tokens'], owner: 'root' }, detail: 'body must NOT have additional properties (owner)' },
    { title: 'a username starting with a dash', username: '-bad', payload: { name: 'x', scopes: ['read:tokens'] }, detail: /^params\/username must match pattern/ },
    { title: 'a username of 41 characters', username: 'a'.repeat(41), payload: { name: 'x', scopes: ['read:tokens'] }, detail: 'params/username must NOT have more than 40 characters' }
  ]
  const before = await countTokens(app)
  for (const { title, username = 'alice', payload, code = 'FST_ERR_VALIDATION', detail } of cases) {
    t.test(title, async (t) => {
      const res = await createToken(app, username, payload)
      assertProblem(t, res, 400, code, detail)
      if (code === 'FST_ERR_VALIDATION') t.ok(Array.isArray(res.json().errors) && res.json().errors.length > 0, 'lists every failure')
    })
  }
  t.test('nothing was written', async (t) => {
    t.equal(await countTokens(app), before)
  })
})

t.test('a body that is not JSON is a 400 problem', async (t) => {
  const before = await countTokens(app)
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/users/alice/tokens',
    headers: { authorization: basic('alice', PASSWORD), 'content-type': 'application/json' },
    payload: '{"name": "x", "scopes": ['
  })
  assertProblem(t, res, 400, 'FST_ERR_CTP_INVALID_JSON_BODY', /JSON/)
  t.equal(await countTokens(app), before)
})

t.test('a body larger than BODY_LIMIT is a 413 problem', async (t) => {
  const before = await countTokens(app)
  const res = await createToken(app, 'alice', { name: 'x', scopes: ['read:tokens'], audience: Array.from({ length: 20 }, () => 'a'.repeat(1000)) })
  assertProblem(t, res, 413, 'FST_ERR_CTP_BODY_TOO_LARGE', /too large/i)
  t.equal(await countTokens(app), before)
})

t.test('a non-admin asking for the admin scope is a 403', async (t) => {
  const before = await countTokens(app)
  const res = await createToken(app, 'alice', { name: 'wannabe', scopes: ['read:tokens', 'admin'] })
  assertProblem(t, res, 403, 'TESSERA_ADMIN_SCOPE_FORBIDDEN', 'only administrators may hold a token with the admin scope')
  t.equal(await countTokens(app), before)
})

t.test('a name already taken by a live token is a 409', async (t) => {
  t.equal((await createToken(app, 'bob', { name: 'laptop', scopes: ['read:tokens'] })).statusCode, 201)
  const before = await countTokens(app)
  const res = await createToken(app, 'bob', { name: ' laptop ', scopes: ['read:repository'] })
  assertProblem(t, res, 409, 'TESSERA_TOKEN_NAME_TAKEN', 'a live token named "laptop" already exists for bob')
  t.equal(await countTokens(app), before)
  const other = await createToken(app, 'alice', { name: 'laptop', scopes: ['read:tokens'] })
  t.equal(other.statusCode, 201, 'another user may use the same name')
})

t.test('token names are NFC-normalised and may not hide characters (issue 12)', async (t) => {
  t.test('a bidi override (U+202E) is a 400 naming the field and the character, and writes nothing', async (t) => {
    const before = await countTokens(app)
    const res = await createToken(app, 'alice', { name: 'deploy\u202egnp.exe', scopes: ['read:tokens'] })
    assertProblem(t, res, 400, 'TESSERA_INVALID_DISPLAY_TEXT', 'name must not contain control or invisible formatting characters (U+202E)')
    t.equal(await countTokens(app), before)
  })

  t.test('a zero-width space (U+200B) and a control character (U+001B) are refused the same way', async (t) => {
    const before = await countTokens(app)
    assertProblem(t, await createToken(app, 'alice', { name: 'lap\u200btop', scopes: ['read:tokens'] }), 400, 'TESSERA_INVALID_DISPLAY_TEXT', /\(U\+200B\)$/)
    assertProblem(t, await createToken(app, 'alice', { name: 'lap\u001b[31mtop', scopes: ['read:tokens'] }), 400, 'TESSERA_INVALID_DISPLAY_TEXT', /\(U\+001B\)$/)
    t.equal(await countTokens(app), before)
  })

  t.test('a decomposed é (e + U+0301) is stored precomposed (U+00E9), and so clashes with the precomposed spelling', async (t) => {
    const res = await createToken(app, 'alice', { name: 'cafe\u0301', scopes: ['read:tokens'] })
    t.equal(res.statusCode, 201)
    t.equal(res.json().name, 'caf\u00e9')
    const rows = await app.orm.em.getConnection().execute<Array<{ name: string }>>('select name from access_tokens where id = ?', [res.json().id])
    t.equal(rows[0]?.name, 'caf\u00e9', 'the row holds the NFC form')
    assertProblem(t, await createToken(app, 'alice', { name: 'caf\u00e9', scopes: ['read:tokens'] }), 409, 'TESSERA_TOKEN_NAME_TAKEN', 'a live token named "caf\u00e9" already exists for alice')
  })
})

t.test('password attempts are rate limited per username and, separately, per address', async (t) => {
  const limited = await build(t, { RATE_LIMIT_PASSWORD_PER_USER: '3', RATE_LIMIT_PASSWORD_PER_IP: '5' })
  await seedUser(limited, 'carol')
  const payload = { name: 'x', scopes: ['read:tokens'] }
  const wrong = basic('carol', 'not the password')

  t.test('the fourth attempt for one username is refused, from any address', async (t) => {
    for (const address of ['10.0.1.1', '10.0.1.2', '10.0.1.3']) {
      const res = await createToken(limited, 'carol', payload, { authorization: wrong, remoteAddress: address })
      t.equal(res.statusCode, 401, `attempt from ${address} is checked`)
    }
    const res = await createToken(limited, 'carol', payload, { remoteAddress: '10.0.1.4' })
    assertProblem(t, res, 429, 'TESSERA_RATE_LIMITED', /^too many attempts: at most 3 in 60 seconds/)
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/)
    t.ok(Number(res.headers['retry-after']) <= 60)
    const upper = await createToken(limited, 'CAROL', payload, { authorization: basic('carol', PASSWORD), remoteAddress: '10.0.1.5' })
    t.equal(upper.statusCode, 429, 'the username is counted case-insensitively')
  })

  t.test('the sixth attempt from one address is refused, whatever the username', async (t) => {
    for (const username of ['dave', 'erin', 'frank', 'grace', 'heidi']) {
      const res = await createToken(limited, username, payload, { remoteAddress: '10.0.2.1' })
      t.equal(res.statusCode, 401, `attempt for ${username} is checked`)
    }
    const res = await createToken(limited, 'ivan', payload, { remoteAddress: '10.0.2.1' })
    assertProblem(t, res, 429, 'TESSERA_RATE_LIMITED', /^too many attempts: at most 5 in 60 seconds/)
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/)
    const elsewhere = await createToken(limited, 'ivan', payload, { remoteAddress: '10.0.2.2' })
    t.equal(elsewhere.statusCode, 401, 'another address is not affected')
  })
})

t.test('with Basic auth disabled, token creation is a clear 403', async (t) => {
  const disabled = await build(t, { BASIC_AUTH_ENABLED: 'false' })
  await seedUser(disabled, 'alice')
  const res = await createToken(disabled, 'alice', { name: 'x', scopes: ['read:tokens'] })
  assertProblem(t, res, 403, 'TESSERA_BASIC_AUTH_DISABLED', 'Basic authentication is disabled on this server; an administrator creates tokens through the admin API')
  t.equal(await countTokens(disabled), 0)
})

t.test('without the internal application, token creation is a 503 that names the fix', async (t) => {
  const bare = await build(t, {}, { internalApp: false })
  await seedUser(bare, 'alice')
  const res = await createToken(bare, 'alice', { name: 'x', scopes: ['read:tokens'] })
  assertProblem(t, res, 503, 'TESSERA_INTERNAL_APP_MISSING', 'the built-in first-party application "internal" is missing; an operator must run `tessera ensure-internal-app`')
  t.equal(await countTokens(bare), 0)
})
