import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { base62, generateToken } from '../../src/services/token-format.js'
import { assertOAuthError, assertProblem, basic, bearer, buildWith, form, seedApplication, seedToken, seedUser } from '../helper.js'

/**
 * Issue 12, finding #10: secrets reached the audit log and the logs when a caller put them in
 * the wrong field. Every line the app logs (at trace) is kept to check what reached it.
 */
const logs: string[] = []
const stream = new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString('utf8')); done() } })
const { app } = await buildWith(t, { RATE_LIMIT_PASSWORD_PER_USER: '1000', RATE_LIMIT_PASSWORD_PER_IP: '1000' }, { logger: { level: 'trace', stream } })
const sql = async <T = Record<string, unknown>>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)

const PASSWORD = 'correct horse battery'
await seedUser(app, 'alice', { password: PASSWORD })
const alice = await seedToken(app, 'alice', { name: 'reader', scopes: ['read:tokens', 'write:tokens'] })
const client = await seedApplication(app, ['introspect'])

function hint (secret: string): string {
  return secret.slice(-4)
}

/** The audit events written for `actor`, once the best-effort write of a failed authentication lands. */
async function auditRowsText (where: string, params: unknown[]): Promise<string> {
  const deadline = Date.now() + 3000
  let rows: Array<{ row: string }> = []
  while (rows.length === 0 && Date.now() < deadline) {
    rows = await sql<{ row: string }>(`select row_to_json(a)::text as row from audit_events a where ${where}`, params)
    if (rows.length === 0) await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return rows.map((row) => row.row).join('\n')
}

function assertNotLogged (t: Test, secret: string, what: string): void {
  t.notOk(logs.join('').includes(secret), `${what} is not in the logs`)
}

t.test('finding #10: a token used as the {token} of DELETE /api/v1/users/{username}/tokens/{token} is echoed neither in the 404 detail nor in the logs', async (t) => {
  logs.length = 0
  const res = await app.inject({ method: 'DELETE', url: `/api/v1/users/alice/tokens/${alice.token}`, headers: { authorization: basic('alice', PASSWORD) } })
  assertProblem(t, res, 404, 'TESSERA_USER_TOKEN_NOT_FOUND', `alice has no token with id or name "tsr_…${hint(alice.token)}"`)
  t.notOk(res.body.includes(alice.token), 'not in the answer')
  assertNotLogged(t, alice.token, 'the token')
  t.ok(logs.some((line) => line.includes(`/api/v1/users/alice/tokens/tsr_…${hint(alice.token)}`)), 'the request line shows the masked URL')
  t.ok(logs.some((line) => line.includes(`alice has no token with id or name \\"tsr_…${hint(alice.token)}\\"`)), 'the 4xx line shows the masked detail')

  const bearerDelete = await app.inject({ method: 'DELETE', url: `/api/v1/users/alice/tokens/${alice.token}`, headers: { authorization: bearer(alice.token) } })
  t.equal(bearerDelete.statusCode, 404, 'with the token itself as the credential, too')
  t.notOk(bearerDelete.body.includes(alice.token))
  assertNotLogged(t, alice.token, 'the token')
})

t.test('finding #10: a mistyped token (wrong checksum) or a JWT in a path is masked just the same', async (t) => {
  logs.length = 0
  const mistyped = `${alice.token.slice(0, -1)}${alice.token.endsWith('A') ? 'B' : 'A'}`
  const jwt = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.${base62(40)}`
  for (const [secret, mask] of [[mistyped, `tsr_…${hint(mistyped)}`], [jwt, `eyJ…${hint(jwt)}`]] as const) {
    const res = await app.inject({ method: 'DELETE', url: `/api/v1/users/alice/tokens/${secret}`, headers: { authorization: bearer(alice.token) } })
    assertProblem(t, res, 404, 'TESSERA_USER_TOKEN_NOT_FOUND', `alice has no token with id or name "${mask}"`)
    t.notOk(res.body.includes(secret), 'not in the answer')
  }
  assertNotLogged(t, mistyped, 'the mistyped token')
  assertNotLogged(t, jwt, 'the JWT')
  assertNotLogged(t, alice.token, 'the bearer token')
})

t.test('finding #10: a token in the path of an unknown route is masked in the 404 "no route" detail and the logs', async (t) => {
  logs.length = 0
  const rest = await app.inject({ method: 'GET', url: `/api/v1/nowhere/${alice.token}` })
  assertProblem(t, rest, 404, 'TESSERA_ROUTE_NOT_FOUND', `no route GET /api/v1/nowhere/tsr_…${hint(alice.token)}`)
  const oauth = await app.inject({ method: 'GET', url: `/oauth/${alice.token}?access_token=${alice.token}` })
  assertOAuthError(t, oauth, 404, 'invalid_request', `no route GET /oauth/tsr_…${hint(alice.token)}`)
  t.notOk(rest.body.includes(alice.token) || oauth.body.includes(alice.token), 'not in the answers')
  assertNotLogged(t, alice.token, 'the token')
})

t.test('finding #10: a token or password in the query string is not logged', async (t) => {
  logs.length = 0
  const res = await app.inject({ method: 'GET', url: `/api/v1/tokens?access_token=${alice.token}&password=hunter2hunter2&q=${alice.token}`, headers: { authorization: bearer(alice.token) } })
  t.equal(res.statusCode, 200)
  assertNotLogged(t, alice.token, 'the token')
  assertNotLogged(t, 'hunter2hunter2', 'the password')
  t.ok(logs.some((line) => line.includes(`access_token=[redacted]&password=[redacted]&q=tsr_…${hint(alice.token)}`)), 'the request line keeps the shape of the query')
})

t.test('finding #10: a client secret sent as client_id is not stored in the audit log', async (t) => {
  logs.length = 0
  const post = form({ token: alice.token, client_id: client.clientSecret, client_secret: 'a wrong guess' })
  const posted = await app.inject({ method: 'POST', url: '/oauth/introspect', payload: post.payload, headers: post.headers })
  assertOAuthError(t, posted, 401, 'invalid_client')
  const grant = form({ grant_type: 'client_credentials' })
  const viaBasic = await app.inject({ method: 'POST', url: '/oauth/token', payload: grant.payload, headers: { ...grant.headers, authorization: basic(client.clientSecret, client.clientId) } })
  assertOAuthError(t, viaBasic, 401, 'invalid_client')

  const masked = `client:tsrcs_…${hint(client.clientSecret)}`
  const stored = await auditRowsText("action = 'auth.failed' and actor = ?", [masked])
  t.match(stored, masked, 'the event names the masked secret')
  const all = (await sql<{ row: string }>('select row_to_json(a)::text as row from audit_events a')).map((row) => row.row).join('\n')
  t.notOk(all.includes(client.clientSecret), 'the secret is in no audit event')
  assertNotLogged(t, client.clientSecret, 'the client secret')
})

t.test('finding #10: a password typed as the username is not stored in auth.failed', async (t) => {
  const typedAsUsername = 'Tr0ub4dor&3 horse!'
  const res = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { username: typedAsUsername, password: PASSWORD } })
  assertProblem(t, res, 401, 'TESSERA_SIGN_IN_FAILED')
  const stored = await auditRowsText("action = 'auth.failed' and actor = ?", ['(not a username)'])
  t.match(stored, '"target":"(not a username)"', 'a fixed placeholder stands for it')
  const all = (await sql<{ row: string }>('select row_to_json(a)::text as row from audit_events a')).map((row) => row.row).join('\n')
  t.notOk(all.includes(typedAsUsername), 'the password is in no audit event')
  assertNotLogged(t, typedAsUsername, 'the password')

  // A valid-looking username is recorded: it cannot be told from a password, and an
  // administrator needs to see which account is being guessed at.
  const wrong = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { username: 'alice', password: 'wrong password' } })
  t.equal(wrong.statusCode, 401)
  t.match(await auditRowsText("action = 'auth.failed' and actor = 'alice'", []), '"target":"alice"')
})

t.test('finding #10: a token sent as a token name is masked in the audit event of its creation', async (t) => {
  const pasted = generateToken('tsr')
  const res = await app.inject({ method: 'POST', url: '/api/v1/users/alice/tokens', headers: { authorization: basic('alice', PASSWORD) }, payload: { name: pasted, scopes: ['read:tokens'] } })
  t.equal(res.statusCode, 201)
  const stored = await auditRowsText("action = 'token.created' and target = ?", [`tsr_…${hint(pasted)}`])
  t.notOk(stored.includes(pasted), 'the label is masked')
  t.ok(stored.length > 0, 'the event is there')
})
