import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { basic, bearer, build, seedApplication, seedToken, seedUser } from '../../helper.js'

/**
 * Who may call the admin API: a bearer token with the `admin` scope, held by an active admin
 * user. Every admin route is tried with every kind of caller; each cell is one exact outcome.
 */
const app = await build(t)
const PASSWORD = 'correct horse battery'

await seedUser(app, 'root', { admin: true, password: PASSWORD })
const root = (await seedToken(app, 'root', { scopes: ['admin'] })).token

await seedUser(app, 'plain')
const plain = (await seedToken(app, 'plain', { scopes: ['read:tokens'] })).token

await seedUser(app, 'admin-unscoped', { admin: true })
const unscoped = (await seedToken(app, 'admin-unscoped', { scopes: ['read:tokens', 'write:tokens'] })).token

await seedUser(app, 'demoted', { admin: true })
const demoted = (await seedToken(app, 'demoted', { scopes: ['admin'] })).token

await seedUser(app, 'benched', { admin: true })
const suspended = (await seedToken(app, 'benched', { scopes: ['admin'] })).token

async function patchUser (username: string, body: Record<string, unknown>): Promise<void> {
  const res = await app.inject({ method: 'PATCH', url: `/api/v1/admin/users/${username}`, headers: { authorization: bearer(root) }, payload: body })
  if (res.statusCode !== 200) throw new Error(`PATCH ${username} answered ${res.statusCode}: ${res.body}`)
}

// Both changes go through the admin API, as an operator would make them.
await patchUser('demoted', { admin: false })
await patchUser('benched', { suspended: true })

// Targets for the admin cells, which succeed and so change state.
await seedUser(app, 'target')
await seedUser(app, 'doomed')
const revocable = await seedToken(app, 'target', { name: 'revocable' })
const leaked = await seedToken(app, 'target', { name: 'leaked' })
const looked = await seedToken(app, 'target', { name: 'looked-up' })
const application = await seedApplication(app, ['introspect'])
const doomedApplication = await seedApplication(app, ['introspect'])

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  url: string
  payload?: Record<string, unknown>
  success: number
}

const routes: Route[] = [
  { method: 'POST', url: '/api/v1/admin/users', payload: { username: 'created-by-matrix' }, success: 201 },
  { method: 'GET', url: '/api/v1/admin/users', success: 200 },
  { method: 'GET', url: '/api/v1/admin/users/target', success: 200 },
  { method: 'PATCH', url: '/api/v1/admin/users/target', payload: { email: 'target@example.test' }, success: 200 },
  { method: 'DELETE', url: '/api/v1/admin/users/doomed', success: 204 },
  { method: 'GET', url: '/api/v1/admin/users/target/tokens', success: 200 },
  { method: 'POST', url: '/api/v1/admin/users/target/tokens', payload: { name: 'from-matrix', scopes: ['read:tokens'] }, success: 201 },
  { method: 'DELETE', url: `/api/v1/admin/users/target/tokens/${revocable.id}`, success: 204 },
  { method: 'POST', url: '/api/v1/admin/tokens/lookup', payload: { token: looked.token }, success: 200 },
  { method: 'POST', url: '/api/v1/admin/tokens/revoke', payload: { token: leaked.token }, success: 200 },
  { method: 'POST', url: '/api/v1/admin/applications', payload: { name: 'matrix app', scopes: ['introspect'] }, success: 201 },
  { method: 'GET', url: '/api/v1/admin/applications', success: 200 },
  { method: 'GET', url: `/api/v1/admin/applications/${application.id}`, success: 200 },
  { method: 'PATCH', url: `/api/v1/admin/applications/${application.id}`, payload: { name: 'renamed by matrix' }, success: 200 },
  { method: 'DELETE', url: `/api/v1/admin/applications/${doomedApplication.id}`, success: 204 },
  { method: 'POST', url: `/api/v1/admin/applications/${application.id}/secret`, success: 200 },
  { method: 'GET', url: '/api/v1/admin/audit', success: 200 }
]

interface Outcome {
  status: number
  code: string | null
  challenge: string | null
}

interface Caller {
  name: string
  authorization?: string
  expect: (route: Route) => Outcome
}

const missingScope = { status: 403, code: 'TESSERA_INSUFFICIENT_SCOPE', challenge: 'Bearer realm="tessera", error="insufficient_scope", error_description="Requires the admin scope", scope="admin"' }

// The admin comes last: its requests succeed and change what they target.
const callers: Caller[] = [
  { name: 'anonymous is 401 with a Bearer challenge', expect: () => ({ status: 401, code: 'TESSERA_TOKEN_REQUIRED', challenge: 'Bearer realm="tessera"' }) },
  {
    name: 'Basic credentials of an admin are 401 (admin routes take bearer tokens only)',
    authorization: basic('root', PASSWORD),
    // RFC 6750 §3.1: credentials of another scheme are no bearer credentials, so a bare challenge.
    expect: () => ({ status: 401, code: 'TESSERA_BEARER_SCHEME_REQUIRED', challenge: 'Bearer realm="tessera"' })
  },
  { name: 'a plain user\'s read:tokens token is 403', authorization: bearer(plain), expect: () => missingScope },
  { name: 'an admin user\'s token without the admin scope is 403', authorization: bearer(unscoped), expect: () => missingScope },
  // The demotion takes the admin scope away from the token itself (what it grants follows the owner's rights now).
  { name: 'an admin-scoped token of a since-demoted user is 403', authorization: bearer(demoted), expect: () => missingScope },
  {
    name: 'a suspended admin\'s token is 401: the token is dead',
    authorization: bearer(suspended),
    expect: () => ({ status: 401, code: 'TESSERA_INVALID_TOKEN', challenge: 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"' })
  },
  { name: 'the admin gets the route\'s success status', authorization: bearer(root), expect: (route) => ({ status: route.success, code: null, challenge: null }) }
]

function outcome (res: LightMyRequestResponse): Outcome {
  const problem = res.statusCode >= 400 ? res.json() as { code?: string } : null
  const challenge = res.headers['www-authenticate']
  return { status: res.statusCode, code: problem?.code ?? null, challenge: typeof challenge === 'string' ? challenge : null }
}

for (const route of routes) {
  t.test(`${route.method} ${route.url.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, '{id}')}`, async (t) => {
    for (const caller of callers) {
      t.test(caller.name, async (t) => {
        const res = await app.inject({
          method: route.method,
          url: route.url,
          headers: caller.authorization !== undefined ? { authorization: caller.authorization } : {},
          ...(route.payload !== undefined ? { payload: route.payload } : {})
        })
        t.strictSame(outcome(res), caller.expect(route))
      })
    }
  })
}
