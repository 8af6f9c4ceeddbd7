import t from 'tap'
import { expirationHeader } from '../../src/http/expiration.js'
import { AccessToken } from '../../src/entities/access-token.js'
import { bearer, buildWith, seedToken, seedUser } from '../helper.js'
import { signIn } from '../web/helper.js'

/*
 * Tessera-Token-Expiration on every answer to a request a bearer token authenticated (it was on
 * /auth/verify only): token/info, the self-service API, the admin API — errors included, since a
 * 403 is where a client most needs to see the end coming. Not on a web session's answers (no
 * token), nor for a token that never expires.
 */

const { app } = await buildWith(t, { TOKEN_MAX_LIFETIME: '0' })
await seedUser(app, 'root', { admin: true, password: 'a long enough password' })
const admin = await seedToken(app, 'root', { name: 'admin', scopes: ['admin'], expires_in: 3 * 86400 })
const reader = await seedToken(app, 'root', { name: 'reader', scopes: ['read:tokens'], expires_in: 86400 })
const forever = await seedToken(app, 'root', { name: 'forever', scopes: ['read:tokens'], expires_at: null })

async function expectedFor (id: string): Promise<string> {
  const token = await app.orm.em.fork().findOneOrFail(AccessToken, id)
  return expirationHeader(token.expiresAt!.getTime())
}

t.test('token/info, the self-service API and the admin API say when the token expires', async (t) => {
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(reader.token) } })
  t.equal(info.statusCode, 200)
  t.equal(info.headers['tessera-token-expiration'], await expectedFor(reader.id), 'token/info')
  const own = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer(reader.token) } })
  t.equal(own.statusCode, 200)
  t.equal(own.headers['tessera-token-expiration'], await expectedFor(reader.id), 'the self-service API')
  const users = await app.inject({ method: 'GET', url: '/api/v1/admin/users', headers: { authorization: bearer(admin.token) } })
  t.equal(users.statusCode, 200)
  t.equal(users.headers['tessera-token-expiration'], await expectedFor(admin.id), 'the admin API')
  const refused = await app.inject({ method: 'GET', url: '/api/v1/admin/users', headers: { authorization: bearer(reader.token) } })
  t.equal(refused.statusCode, 403)
  t.equal(refused.headers['tessera-token-expiration'], await expectedFor(reader.id), 'a 403 too: the token itself is valid')
})

t.test('no header for a token that never expires, nor for a web session', async (t) => {
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(forever.token) } })
  t.equal(info.statusCode, 200)
  t.notOk('tessera-token-expiration' in info.headers)
  const session = await signIn(app, 'root', 'a long enough password')
  const own = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { cookie: session.cookie } })
  t.equal(own.statusCode, 200)
  t.notOk('tessera-token-expiration' in own.headers)
})
