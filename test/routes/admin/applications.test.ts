import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { Application } from '../../../src/entities/application.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { issueToken } from '../../../src/services/tokens.js'
import { assertProblem, basic, bearer, build, introspection, seedApplication, seedToken, seedUser } from '../../helper.js'

const PUBLIC_URL = 'https://auth.example.test'
const VALID_SCOPES = 'admin introspect read:repository read:tokens write:repository write:tokens'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000'

const app = await build(t, { PUBLIC_URL })
await seedUser(app, 'root', { admin: true })
const adminToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token
await seedUser(app, 'owner')
const subject = await seedToken(app, 'owner', { name: 'subject' })

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

async function admin (method: Method, url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return await app.inject({
    method,
    url,
    headers: { authorization: bearer(adminToken) },
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {})
  })
}

/** Introspects `token` as the application with these credentials (client_secret_basic). */
async function introspectAs (clientId: string, secret: string, token: string): Promise<LightMyRequestResponse> {
  return await introspection(app, token, basic(clientId, secret))
}

async function sql<T = unknown> (query: string, params: unknown[] = []): Promise<T[]> {
  return await app.orm.em.getConnection().execute<T[]>(query, params)
}

async function count (from: string, params: unknown[] = []): Promise<number> {
  const rows = await sql<{ n: number }>(`select count(*)::int as n from ${from}`, params)
  return rows[0]?.n ?? -1
}

async function createApp (payload: Record<string, unknown>): Promise<{ id: string, clientId: string, secret: string }> {
  const res = await admin('POST', '/api/v1/admin/applications', payload)
  if (res.statusCode !== 201) throw new Error(`create answered ${res.statusCode}: ${res.body}`)
  return { id: res.json().id, clientId: res.json().client_id, secret: res.json().client_secret }
}

const internal = (await app.orm.em.fork().findOneOrFail(Application, { clientId: 'internal' })).id

t.test('create', async (t) => {
  t.test('201 with the secret once (no-store), stored only as argon2id', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: '  Gateway  ', scopes: ['introspect'], redirect_uris: ['https://gw.example/callback'] })
    t.equal(res.statusCode, 201)
    t.equal(res.headers['cache-control'], 'no-store')
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['client_id', 'client_secret', 'confidential', 'created_at', 'id', 'internal', 'introspection_audiences', 'introspection_scopes', 'name', 'redirect_uris', 'scopes', 'token_format'])
    t.match(body, {
      id: UUID,
      name: 'Gateway',
      client_id: /^[0-9A-Za-z]{24}$/,
      client_secret: /^tsrcs_[0-9A-Za-z]{40}$/,
      confidential: true,
      redirect_uris: ['https://gw.example/callback'],
      scopes: ['introspect'],
      introspection_audiences: null,
      introspection_scopes: null,
      token_format: 'opaque',
      internal: false,
      created_at: ISO_DATE
    })
    const [row] = await sql<{ client_secret_hash: string, everything: string }>('select client_secret_hash, row_to_json(a)::text as everything from applications a where id = ?', [body.id])
    t.match(row?.client_secret_hash, /^\$argon2id\$/)
    t.notOk(row?.everything.includes(body.client_secret), 'the secret is not stored')
    t.notOk(row?.everything.includes(body.client_secret.slice(6)), 'nor its random part')
    t.equal((await introspectAs(body.client_id, body.client_secret, subject.token)).json().active, true, 'the secret works')
    const shown = await admin('GET', `/api/v1/admin/applications/${body.id}`)
    t.notOk('client_secret' in shown.json(), 'never shown again')
  })

  t.test('empty redirect_uris, introspection audiences and the jwt format are kept', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'api', scopes: ['introspect', 'read:repository'], redirect_uris: [], introspection_audiences: ['https://api.example'], token_format: 'jwt' })
    t.equal(res.statusCode, 201)
    t.match(res.json(), { redirect_uris: [], scopes: ['introspect', 'read:repository'], introspection_audiences: ['https://api.example'], token_format: 'jwt' })
  })

  t.test('introspection_scopes are checked against the catalogue and can be changed', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'scoped', scopes: ['introspect'], introspection_scopes: ['read:repository'] })
    t.equal(res.statusCode, 201)
    t.strictSame(res.json().introspection_scopes, ['read:repository'])
    const unknown = await admin('POST', '/api/v1/admin/applications', { name: 'bad', scopes: ['introspect'], introspection_scopes: ['read:nothing'] })
    t.equal(unknown.statusCode, 400)
    t.equal(unknown.json().code, 'TESSERA_INVALID_SCOPE')
    const cleared = await admin('PATCH', `/api/v1/admin/applications/${res.json().id as string}`, { introspection_scopes: [] })
    t.equal(cleared.statusCode, 200)
    t.equal(cleared.json().introspection_scopes, null)
  })

  t.test('an empty introspection_audiences list means no limit, as on update', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'unlimited', scopes: ['introspect'], introspection_audiences: [] })
    t.equal(res.statusCode, 201)
    t.equal(res.json().introspection_audiences, null)
  })

  t.test('a public client has no secret', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'spa', scopes: [], confidential: false, redirect_uris: ['http://localhost:8080/cb'] })
    t.equal(res.statusCode, 201)
    t.match(res.json(), { confidential: false, client_secret: null, scopes: [] })
    t.strictSame(await sql('select client_secret_hash from applications where id = ?', [res.json().id]), [{ client_secret_hash: null }])
  })

  t.test('an unknown scope is 400 listing the valid scopes, and creates nothing', async (t) => {
    const before = await count('applications')
    const events = await count('audit_events where action = \'application.created\'')
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'bad', scopes: ['introspect', 'root'] })
    assertProblem(t, res, 400, 'TESSERA_INVALID_SCOPE', `unknown scope root; valid scopes are: ${VALID_SCOPES}`)
    t.equal(await count('applications'), before)
    t.equal(await count('audit_events where action = \'application.created\''), events)
  })

  const badRedirects: Array<[string, string, string, RegExp]> = [
    ['with a fragment', 'https://gw.example/cb#frag', 'TESSERA_REDIRECT_URI_FRAGMENT', /must not have a fragment/],
    ['with an empty fragment', 'https://gw.example/cb#', 'TESSERA_REDIRECT_URI_FRAGMENT', /must not have a fragment/],
    ['relative', '/callback', 'TESSERA_REDIRECT_URI_NOT_ABSOLUTE', /not an absolute URI/],
    ['without a scheme', 'gw.example/callback', 'TESSERA_REDIRECT_URI_NOT_ABSOLUTE', /not an absolute URI/]
  ]
  for (const [what, uri, code, detail] of badRedirects) {
    t.test(`a redirect URI ${what} is 400, and creates nothing`, async (t) => {
      const before = await count('applications')
      assertProblem(t, await admin('POST', '/api/v1/admin/applications', { name: 'redirecting', scopes: [], redirect_uris: ['https://ok.example/cb', uri] }), 400, code, detail)
      t.equal(await count('applications'), before)
    })
  }

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['a missing name', { scopes: [] }, 'FST_ERR_VALIDATION'],
    ['a blank name', { name: '   ', scopes: [] }, 'TESSERA_INVALID_APPLICATION_NAME'],
    ['missing scopes', { name: 'x' }, 'FST_ERR_VALIDATION'],
    ['an unknown token format', { name: 'x', scopes: [], token_format: 'saml' }, 'FST_ERR_VALIDATION'],
    ['an unknown property', { name: 'x', scopes: [], client_secret: 'mine' }, 'FST_ERR_VALIDATION']
  ]
  for (const [what, payload, code] of invalid) {
    t.test(`${what} is 400 ${code}`, async (t) => {
      assertProblem(t, await admin('POST', '/api/v1/admin/applications', payload), 400, code)
    })
  }
})

t.test('list and show', async (t) => {
  t.test('the list pages with X-Total-Count and Link, the internal application first', async (t) => {
    const total = await count('applications')
    const res = await admin('GET', '/api/v1/admin/applications?limit=2')
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-total-count'], String(total))
    t.equal(res.json().length, 2)
    t.match(res.json()[0], { id: internal, client_id: 'internal', internal: true, confidential: false })
    t.match(res.headers.link, `<${PUBLIC_URL}/api/v1/admin/applications?page=2&limit=2>; rel="next"`)
    t.notOk(res.body.includes('client_secret'), 'no secrets in the list')
  })

  t.test('show by id, in either case', async (t) => {
    const res = await admin('GET', `/api/v1/admin/applications/${internal.toUpperCase()}`)
    t.equal(res.statusCode, 200)
    t.match(res.json(), { id: internal, client_id: 'internal', internal: true })
  })

  t.test('an unknown id is 404; a malformed id is 400', async (t) => {
    assertProblem(t, await admin('GET', `/api/v1/admin/applications/${UNKNOWN_ID}`), 404, 'TESSERA_APPLICATION_NOT_FOUND')
    assertProblem(t, await admin('GET', '/api/v1/admin/applications/not-a-uuid'), 400, 'FST_ERR_VALIDATION')
  })
})

t.test('update', async (t) => {
  const target = await createApp({ name: 'patchable', scopes: ['introspect'] })

  t.test('name, scopes, redirect URIs, audiences and format', async (t) => {
    const res = await admin('PATCH', `/api/v1/admin/applications/${target.id}`, {
      name: 'patched',
      scopes: ['introspect', 'write:repository'],
      redirect_uris: ['https://a.example/cb', 'https://a.example/cb'],
      introspection_audiences: ['https://api.example'],
      token_format: 'jwt'
    })
    t.equal(res.statusCode, 200)
    t.match(res.json(), { id: target.id, name: 'patched', scopes: ['introspect', 'write:repository'], redirect_uris: ['https://a.example/cb'], introspection_audiences: ['https://api.example'], token_format: 'jwt' })
    t.match((await admin('GET', `/api/v1/admin/applications/${target.id}`)).json(), { name: 'patched', token_format: 'jwt' })
    const cleared = await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { introspection_audiences: [], redirect_uris: [] })
    t.match(cleared.json(), { introspection_audiences: null, redirect_uris: [] })
  })

  t.test('a scope change takes effect on the next request, although the credentials were cached', async (t) => {
    t.equal((await introspectAs(target.clientId, target.secret, subject.token)).statusCode, 200)
    t.equal((await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { scopes: ['read:repository'] })).statusCode, 200)
    const res = await introspectAs(target.clientId, target.secret, subject.token)
    t.equal(res.statusCode, 403)
    t.equal(res.json().error, 'insufficient_scope')
  })

  t.test('an unknown scope and a redirect URI with a fragment are 400, and change nothing', async (t) => {
    const before = (await admin('GET', `/api/v1/admin/applications/${target.id}`)).json()
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { name: 'half-applied', scopes: ['nope'] }), 400, 'TESSERA_INVALID_SCOPE', /valid scopes are/)
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { name: 'half-applied', redirect_uris: ['https://a.example/#x'] }), 400, 'TESSERA_REDIRECT_URI_FRAGMENT')
    t.strictSame((await admin('GET', `/api/v1/admin/applications/${target.id}`)).json(), before)
  })

  t.test('an empty body or an unknown property is 400', async (t) => {
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${target.id}`, {}), 400, 'FST_ERR_VALIDATION')
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { confidential: false }), 400, 'FST_ERR_VALIDATION', /\(confidential\)/)
  })

  t.test('the internal application is 409', async (t) => {
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${internal}`, { name: 'mine now' }), 409, 'TESSERA_INTERNAL_APPLICATION_PROTECTED', /internal application cannot be changed/)
    t.match((await admin('GET', `/api/v1/admin/applications/${internal}`)).json(), { name: 'Tessera (first-party)' })
  })

  t.test('an unknown id is 404; a malformed id is 400', async (t) => {
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${UNKNOWN_ID}`, { name: 'x' }), 404, 'TESSERA_APPLICATION_NOT_FOUND')
    assertProblem(t, await admin('PATCH', '/api/v1/admin/applications/123', { name: 'x' }), 400, 'FST_ERR_VALIDATION')
  })
})

t.test('application names are NFC-normalised and may not hide characters (issue 12)', async (t) => {
  const target = await createApp({ name: 'naming-target', scopes: ['introspect'] })

  t.test('on create, a bidi override (U+202E) is a 400 naming the field and the character, and creates nothing', async (t) => {
    const before = await count('applications')
    assertProblem(t, await admin('POST', '/api/v1/admin/applications', { name: 'billing\u202eipa', scopes: ['introspect'] }), 400,
      'TESSERA_INVALID_DISPLAY_TEXT', 'name must not contain control or invisible formatting characters (U+202E)')
    t.equal(await count('applications'), before)
  })

  t.test('on update, a zero-width joiner (U+200D) is refused and the name is unchanged', async (t) => {
    assertProblem(t, await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { name: 'bill\u200ding' }), 400,
      'TESSERA_INVALID_DISPLAY_TEXT', 'name must not contain control or invisible formatting characters (U+200D)')
    t.strictSame(await sql('select name from applications where id = ?', [target.id]), [{ name: 'naming-target' }])
  })

  t.test('a decomposed é (e + U+0301) is stored precomposed (U+00E9), on create and on update', async (t) => {
    const created = await admin('POST', '/api/v1/admin/applications', { name: 'caf\u0065\u0301', scopes: ['introspect'] })
    t.equal(created.statusCode, 201)
    t.equal(created.json().name, 'caf\u00e9')
    t.strictSame(await sql('select name from applications where id = ?', [created.json().id]), [{ name: 'caf\u00e9' }])
    const updated = await admin('PATCH', `/api/v1/admin/applications/${target.id}`, { name: 'r\u0065\u0301sum\u0065\u0301' })
    t.equal(updated.statusCode, 200)
    t.equal(updated.json().name, 'r\u00e9sum\u00e9')
    t.strictSame(await sql('select name from applications where id = ?', [target.id]), [{ name: 'r\u00e9sum\u00e9' }])
  })
})

t.test('secret rotation', async (t) => {
  t.test('the old secret is refused at once although it was cached; the new one works', async (t) => {
    const rotating = await createApp({ name: 'rotating', scopes: ['introspect'] })
    t.equal((await introspectAs(rotating.clientId, rotating.secret, subject.token)).json().active, true, 'the old secret works, and is now cached')
    const [before] = await sql<{ client_secret_hash: string }>('select client_secret_hash from applications where id = ?', [rotating.id])

    const res = await admin('POST', `/api/v1/admin/applications/${rotating.id}/secret`)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['cache-control'], 'no-store')
    t.strictSame(Object.keys(res.json()).sort(), ['client_id', 'client_secret'])
    t.equal(res.json().client_id, rotating.clientId)
    const fresh = res.json().client_secret as string
    t.match(fresh, /^tsrcs_[0-9A-Za-z]{40}$/)
    t.not(fresh, rotating.secret)

    const old = await introspectAs(rotating.clientId, rotating.secret, subject.token)
    t.equal(old.statusCode, 401)
    t.equal(old.json().error, 'invalid_client')
    const accepted = await introspectAs(rotating.clientId, fresh, subject.token)
    t.equal(accepted.statusCode, 200)
    t.equal(accepted.json().active, true)

    const [after] = await sql<{ client_secret_hash: string }>('select client_secret_hash from applications where id = ?', [rotating.id])
    t.match(after?.client_secret_hash, /^\$argon2id\$/)
    t.not(after?.client_secret_hash, before?.client_secret_hash)
  })

  t.test('a public client has no secret to rotate: 409', async (t) => {
    const res = await admin('POST', '/api/v1/admin/applications', { name: 'public', scopes: [], confidential: false })
    assertProblem(t, await admin('POST', `/api/v1/admin/applications/${res.json().id}/secret`), 409, 'TESSERA_PUBLIC_CLIENT_HAS_NO_SECRET', /public client/)
    t.strictSame(await sql('select client_secret_hash from applications where id = ?', [res.json().id]), [{ client_secret_hash: null }])
  })

  t.test('the internal application is 409', async (t) => {
    assertProblem(t, await admin('POST', `/api/v1/admin/applications/${internal}/secret`), 409, 'TESSERA_INTERNAL_APPLICATION_PROTECTED')
  })

  t.test('an unknown id is 404; a malformed id is 400', async (t) => {
    assertProblem(t, await admin('POST', `/api/v1/admin/applications/${UNKNOWN_ID}/secret`), 404, 'TESSERA_APPLICATION_NOT_FOUND')
    assertProblem(t, await admin('POST', '/api/v1/admin/applications/x/secret'), 400, 'FST_ERR_VALIDATION')
  })
})

t.test('delete', async (t) => {
  t.test('removes the application and kills its tokens at once, cache included', async (t) => {
    const doomed = await createApp({ name: 'doomed', scopes: ['introspect'] })
    const watcher = await seedApplication(app)
    const em = app.orm.em.fork()
    const issued = await em.transactional(async (tx) => {
      const application = await tx.findOneOrFail(Application, doomed.id)
      return await issueToken(tx, app.services.issuer, { owner: null, application, input: { name: 'service', scopes: ['read:repository'] }, actor: SYSTEM_ACTOR })
    })
    t.match((await introspectAs(watcher.clientId, watcher.clientSecret, issued.plaintext)).json(), { active: true, client_id: doomed.clientId })
    t.ok(app.services.cache.get(app.services.digester.cacheKey(issued.plaintext)) != null, 'the token is cached')
    t.equal((await introspectAs(doomed.clientId, doomed.secret, subject.token)).statusCode, 200, 'its credentials work and are cached')

    const res = await admin('DELETE', `/api/v1/admin/applications/${doomed.id}`)
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.strictSame((await introspectAs(watcher.clientId, watcher.clientSecret, issued.plaintext)).json(), { active: false })
    t.equal((await introspectAs(doomed.clientId, doomed.secret, subject.token)).statusCode, 401, 'its credentials are refused')
    t.equal(await count('access_tokens where application_id = ?', [doomed.id]), 0)
    assertProblem(t, await admin('GET', `/api/v1/admin/applications/${doomed.id}`), 404, 'TESSERA_APPLICATION_NOT_FOUND')
    assertProblem(t, await admin('DELETE', `/api/v1/admin/applications/${doomed.id}`), 404, 'TESSERA_APPLICATION_NOT_FOUND')
  })

  t.test('the internal application cannot be deleted: 409, and personal tokens live on', async (t) => {
    assertProblem(t, await admin('DELETE', `/api/v1/admin/applications/${internal}`), 409, 'TESSERA_INTERNAL_APPLICATION_PROTECTED', /cannot be deleted/)
    t.equal(await count('applications where id = ?', [internal]), 1)
    const watcher = await seedApplication(app)
    t.equal((await introspectAs(watcher.clientId, watcher.clientSecret, subject.token)).json().active, true)
  })

  t.test('a malformed id is 400', async (t) => {
    assertProblem(t, await admin('DELETE', '/api/v1/admin/applications/internal'), 400, 'FST_ERR_VALIDATION')
  })
})
