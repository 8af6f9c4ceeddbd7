import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { AccessToken } from '../../../src/entities/access-token.js'
import { Application } from '../../../src/entities/application.js'
import { User } from '../../../src/entities/user.js'
import { SYSTEM_ACTOR } from '../../../src/services/audit.js'
import { issueToken } from '../../../src/services/tokens.js'
import { generateToken } from '../../../src/services/token-format.js'
import { assertOAuthError, basic, bearer, build, form, introspection, seedApplication, seedToken, seedUser } from '../../helper.js'

const BASIC_CHALLENGE = 'Basic realm="tessera", charset="UTF-8"'

const app = await build(t)
const owner = await seedApplication(app, ['introspect', 'write:repository'])
const ownerAuth = basic(owner.clientId, owner.clientSecret)
const stranger = await seedApplication(app, ['introspect'])
const strangerAuth = basic(stranger.clientId, stranger.clientSecret)
await seedUser(app, 'holder')

async function revoke (fields: Record<string, string>, authorization?: string): Promise<LightMyRequestResponse> {
  const body = form(fields)
  return await app.inject({
    method: 'POST',
    url: '/oauth/revoke',
    payload: body.payload,
    headers: { ...body.headers, ...(authorization !== undefined ? { authorization } : {}) }
  })
}

/** A client_credentials token of `owner`, issued through the token endpoint. */
async function applicationToken (authorization = ownerAuth): Promise<string> {
  const body = form({ grant_type: 'client_credentials' })
  const res = await app.inject({ method: 'POST', url: '/oauth/token', payload: body.payload, headers: { ...body.headers, authorization } })
  return res.json().access_token
}

async function isActive (token: string): Promise<boolean> {
  return (await introspection(app, token, strangerAuth)).json().active
}

async function rowOf (token: string): Promise<AccessToken> {
  return await app.orm.em.fork().findOneOrFail(AccessToken, { digest: app.services.digester.digest(token) })
}

async function revocationEvents (tokenId: string): Promise<Array<{ action: string, actor: string, actor_id: string | null, details: unknown }>> {
  return await app.orm.em.getConnection().execute("select action, actor, actor_id, details from audit_events where target_id = ? and action = 'token.revoked'", [tokenId])
}

/** RFC 7009 §2.2: 200, nothing in the body, and not to be cached. */
function assertEmptyOk (t: Test, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 200)
  t.equal(res.body, '')
  t.equal(res.headers['content-length'], '0')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers.pragma, 'no-cache')
}

t.test('an application revokes a token it owns', async (t) => {
  t.test('with client_secret_basic: 200 with an empty body, and the token is dead at once', async (t) => {
    const token = await applicationToken()
    t.equal(await isActive(token), true, 'active, and now cached')
    assertEmptyOk(t, await revoke({ token }, ownerAuth))
    t.equal(await isActive(token), false)
    t.not((await rowOf(token)).revokedAt, null)
  })

  t.test('with client_secret_post', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token, client_id: owner.clientId, client_secret: owner.clientSecret }))
    t.equal(await isActive(token), false)
  })

  t.test('whatever the token_type_hint says (RFC 7009 §2.1: the server looks further)', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token, token_type_hint: 'refresh_token' }, ownerAuth))
    t.equal(await isActive(token), false)
  })

  t.test('the revocation is audited once, as token.revoked by the client', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token }, ownerAuth))
    assertEmptyOk(t, await revoke({ token }, ownerAuth))
    const events = await revocationEvents((await rowOf(token)).id)
    t.strictSame(events, [{ action: 'token.revoked', actor: `client:${owner.clientId}`, actor_id: null, details: { reason: 'revoked by its application (RFC 7009)' } }])
  })

  t.test('a user\'s token issued for that application is the application\'s to revoke too', async (t) => {
    const token = await app.orm.em.fork().transactional(async (tx) => {
      const issued = await issueToken(tx, app.services.issuer, {
        owner: await tx.findOneOrFail(User, { username: 'holder' }),
        application: await tx.findOneOrFail(Application, owner.id),
        input: { name: 'delegated', scopes: ['write:repository'] },
        actor: SYSTEM_ACTOR
      })
      return issued.plaintext
    })
    t.equal(await isActive(token), true)
    assertEmptyOk(t, await revoke({ token }, ownerAuth))
    t.equal(await isActive(token), false)
  })
})

t.test('no oracle: the same empty 200, and nothing revoked, for tokens the caller may not revoke', async (t) => {
  t.test('another application\'s token: still active', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token }, strangerAuth))
    t.equal(await isActive(token), true)
    t.equal((await rowOf(token)).revokedAt, null)
  })

  t.test('a personal token sent by an application: still active', async (t) => {
    const personal = await seedToken(app, 'holder')
    assertEmptyOk(t, await revoke({ token: personal.token }, ownerAuth))
    t.equal(await isActive(personal.token), true)
  })

  t.test('an application token presented without client authentication: still active', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token }))
    t.equal(await isActive(token), true)
  })

  t.test('an application token presented as its own bearer: still active (only personal tokens revoke themselves)', async (t) => {
    const token = await applicationToken()
    assertEmptyOk(t, await revoke({ token }, bearer(token)))
    t.equal(await isActive(token), true)
  })

  t.test('an unknown, well-formed token', async (t) => {
    assertEmptyOk(t, await revoke({ token: generateToken('tsr') }, ownerAuth))
    assertEmptyOk(t, await revoke({ token: generateToken('tsr') }))
  })

  t.test('a malformed token', async (t) => {
    assertEmptyOk(t, await revoke({ token: 'not-a-token' }, ownerAuth))
    assertEmptyOk(t, await revoke({ token: 'not-a-token' }))
  })

  t.test('an already revoked token: no second audit event', async (t) => {
    const personal = await seedToken(app, 'holder')
    assertEmptyOk(t, await revoke({ token: personal.token }))
    assertEmptyOk(t, await revoke({ token: personal.token }))
    t.equal((await revocationEvents(personal.id)).length, 1)
  })

  t.test('an expired token: left as it is', async (t) => {
    const personal = await seedToken(app, 'holder', { expires_in: 60 })
    const em = app.orm.em.fork()
    await em.nativeUpdate(AccessToken, { id: personal.id }, { expiresAt: new Date(Date.now() - 1000) })
    assertEmptyOk(t, await revoke({ token: personal.token }))
    t.equal((await em.findOneOrFail(AccessToken, personal.id)).revokedAt, null)
    t.equal((await revocationEvents(personal.id)).length, 0)
  })
})

t.test('a personal token revokes itself when presented', async (t) => {
  t.test('in the form, with no client authentication', async (t) => {
    const personal = await seedToken(app, 'holder')
    t.equal(await isActive(personal.token), true)
    assertEmptyOk(t, await revoke({ token: personal.token }))
    t.equal(await isActive(personal.token), false)
    const events = await revocationEvents(personal.id)
    t.match(events, [{ action: 'token.revoked', actor: 'holder', details: { reason: 'revoked by presenting it (RFC 7009)' } }])
    t.type(events[0]?.actor_id, 'string')
  })

  t.test('in the form and as Authorization: Bearer (the same token)', async (t) => {
    const personal = await seedToken(app, 'holder')
    assertEmptyOk(t, await revoke({ token: personal.token }, bearer(personal.token)))
    t.equal(await isActive(personal.token), false)
  })

  t.test('even when its owner is suspended (the holder wants it dead; it must not come back)', async (t) => {
    await seedUser(app, 'suspended-holder')
    const personal = await seedToken(app, 'suspended-holder')
    await app.orm.em.getConnection().execute('update users set suspended_at = now() where username = ?', ['suspended-holder'])
    assertEmptyOk(t, await revoke({ token: personal.token }))
    t.not((await app.orm.em.fork().findOneOrFail(AccessToken, personal.id)).revokedAt, null)
  })

  t.test('a bearer token cannot revoke another token: 400 invalid_request, and both stay active', async (t) => {
    const mine = await seedToken(app, 'holder')
    const other = await seedToken(app, 'holder')
    const res = await revoke({ token: other.token }, bearer(mine.token))
    assertOAuthError(t, res, 400, 'invalid_request', /^a bearer token can revoke only itself/)
    t.equal(await isActive(mine.token), true)
    t.equal(await isActive(other.token), true)
  })
})

t.test('client authentication', async (t) => {
  t.test('a wrong secret is 401 invalid_client with a Basic challenge, and nothing is revoked', async (t) => {
    const token = await applicationToken()
    const res = await revoke({ token }, basic(owner.clientId, 'wrong'))
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    t.equal(await isActive(token), true)
  })

  t.test('a wrong secret in the form is 401 invalid_client', async (t) => {
    const token = await applicationToken()
    const res = await revoke({ token, client_id: owner.clientId, client_secret: 'wrong' })
    assertOAuthError(t, res, 401, 'invalid_client', /^invalid client credentials$/)
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
    t.equal(await isActive(token), true)
  })

  t.test('an unknown client is 401 invalid_client', async (t) => {
    const res = await revoke({ token: generateToken('tsr'), client_id: 'no-such-client', client_secret: 'guess' })
    assertOAuthError(t, res, 401, 'invalid_client')
  })

  t.test('a client_id without a secret is 401 invalid_client', async (t) => {
    const res = await revoke({ token: generateToken('tsr'), client_id: owner.clientId })
    assertOAuthError(t, res, 401, 'invalid_client', /client_id and client_secret are both required/)
  })

  t.test('an unsupported Authorization scheme is 401 invalid_client', async (t) => {
    const res = await revoke({ token: generateToken('tsr') }, 'Digest username="x"')
    assertOAuthError(t, res, 401, 'invalid_client')
    t.equal(res.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  t.test('client_secret_basic and client_secret_post at once is 400 invalid_request', async (t) => {
    const res = await revoke({ token: generateToken('tsr'), client_id: owner.clientId, client_secret: owner.clientSecret }, ownerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /one client authentication method/)
  })

  t.test('a bearer token and client_secret_post at once is 400 invalid_request', async (t) => {
    const personal = await seedToken(app, 'holder')
    const res = await revoke({ token: personal.token, client_id: owner.clientId, client_secret: owner.clientSecret }, bearer(personal.token))
    assertOAuthError(t, res, 400, 'invalid_request', /one client authentication method/)
    t.equal(await isActive(personal.token), true)
  })
})

t.test('bad input is a 4xx OAuth error, never a 500', async (t) => {
  t.test('a missing token is 400 invalid_request naming it', async (t) => {
    const res = await revoke({ token_type_hint: 'access_token' }, ownerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body must have required property 'token'$/)
  })

  t.test('an empty token is 400 invalid_request', async (t) => {
    const res = await revoke({ token: '' }, ownerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must NOT have fewer than 1 characters$/)
  })

  t.test('an oversized token is 400 invalid_request', async (t) => {
    const res = await revoke({ token: 'a'.repeat(5000) }, ownerAuth)
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must NOT have more than 4096 characters$/)
  })

  t.test('duplicate token parameters are 400 invalid_request, and neither token is revoked', async (t) => {
    const first = await seedToken(app, 'holder')
    const second = await seedToken(app, 'holder')
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/revoke',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${first.token}&token=${second.token}`
    })
    assertOAuthError(t, res, 400, 'invalid_request', /^body\/token must be string$/)
    t.equal(await isActive(first.token), true)
    t.equal(await isActive(second.token), true)
  })

  t.test('a JSON body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { authorization: ownerAuth }, payload: { token: generateToken('tsr') } })
    assertOAuthError(t, res, 400, 'invalid_request', /^the request body must be application\/x-www-form-urlencoded$/)
  })

  t.test('a text/plain body is 415 with an OAuth error body', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { authorization: ownerAuth, 'content-type': 'text/plain' }, payload: `token=${generateToken('tsr')}` })
    assertOAuthError(t, res, 415, 'invalid_request', /text\/plain; use application\/x-www-form-urlencoded/)
  })

  t.test('a request without a body is 400 invalid_request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { authorization: ownerAuth } })
    assertOAuthError(t, res, 400, 'invalid_request')
  })

  t.test('a body larger than BODY_LIMIT is 413', async (t) => {
    const res = await revoke({ token: 'a'.repeat(app.config.BODY_LIMIT + 1) }, ownerAuth)
    assertOAuthError(t, res, 413, 'invalid_request', /^Request body is too large$/)
  })
})

t.test('rate limiting', async (t) => {
  t.test('the 601st request of a client within a minute is 429 with Retry-After; other callers are unaffected', async (t) => {
    const busy = await seedApplication(app, ['introspect'])
    const auth = basic(busy.clientId, busy.clientSecret)
    for (let i = 0; i < 600; i++) {
      const res = await revoke({ token: 'malformed' }, auth)
      if (res.statusCode !== 200) t.fail(`request ${i + 1} was ${res.statusCode}`)
    }
    const limited = await revoke({ token: 'malformed' }, auth)
    assertOAuthError(t, limited, 429, 'rate_limited', /^rate limit exceeded for this client: at most 600 in 60 seconds/)
    t.match(limited.headers['retry-after'], /^\d+$/)
    assertEmptyOk(t, await revoke({ token: 'malformed' }, ownerAuth))
  })

  t.test('a holder revoking without client credentials is limited per address (an IPv6 /64 is one)', async (t) => {
    const holderRevoke = async (remoteAddress: string): Promise<LightMyRequestResponse> => {
      const body = form({ token: 'malformed' })
      return await app.inject({ method: 'POST', url: '/oauth/revoke', payload: body.payload, headers: body.headers, remoteAddress })
    }
    for (let i = 0; i < 600; i++) {
      const res = await holderRevoke(`2001:db8:5:6::${(i % 50).toString(16)}`)
      if (res.statusCode !== 200) t.fail(`request ${i + 1} was ${res.statusCode}`)
    }
    assertOAuthError(t, await holderRevoke('2001:db8:5:6::ffff'), 429, 'rate_limited')
    assertEmptyOk(t, await revoke({ token: 'malformed' }, ownerAuth))
    const elsewhere = await holderRevoke('2001:db8:5:7::1')
    t.equal(elsewhere.statusCode, 200, 'another /64 is not limited')
  })
})
