import t from 'tap'
import { AccessToken } from '../../src/entities/access-token.js'
import { User } from '../../src/entities/user.js'
import { findInternalApplication } from '../../src/services/applications.js'
import { SYSTEM_ACTOR, type Actor } from '../../src/services/audit.js'
import { isWellFormedToken } from '../../src/services/token-format.js'
import { issueToken, resolveExpiry, revokeToken, type IssuedToken, type LifetimeLimits, type NewTokenInput } from '../../src/services/tokens.js'
import { build, seedToken, seedUser } from '../helper.js'

const NOW = new Date('2026-03-01T12:00:00.000Z')
const DAY = 86400
const LIMITS: LifetimeLimits = { defaultLifetime: 30 * DAY, maxLifetime: 365 * DAY }
const UNLIMITED: LifetimeLimits = { defaultLifetime: 0, maxLifetime: 0 }

function after (seconds: number): Date {
  return new Date(NOW.getTime() + seconds * 1000)
}

const badRequest = (code: string, message: string): { statusCode: number, code: string, message: string } => ({ statusCode: 400, code, message })

t.test('resolveExpiry', async (t) => {
  t.test('refuses expires_at and expires_in together', async (t) => {
    const error = badRequest('TESSERA_EXPIRY_CONFLICT', 'give either expires_at or expires_in, not both')
    t.throws(() => resolveExpiry({ expires_at: after(60).toISOString(), expires_in: 60 }, LIMITS, NOW), error)
    t.throws(() => resolveExpiry({ expires_at: null, expires_in: 60 }, UNLIMITED, NOW), error)
  })

  t.test('expires_in counts seconds from now', async (t) => {
    t.strictSame(resolveExpiry({ expires_in: 3600 }, LIMITS, NOW), after(3600))
    t.strictSame(resolveExpiry({ expires_in: 1 }, UNLIMITED, NOW), after(1))
  })

  t.test('expires_at is taken as given when in the future', async (t) => {
    t.strictSame(resolveExpiry({ expires_at: '2026-03-02T00:00:00Z' }, LIMITS, NOW), new Date('2026-03-02T00:00:00Z'))
    t.strictSame(resolveExpiry({ expires_at: '2026-03-01T14:00:00+01:00' }, LIMITS, NOW), after(3600), 'with a time-zone offset')
  })

  t.test('expires_at in the past, or now, is refused', async (t) => {
    const error = badRequest('TESSERA_EXPIRY_IN_PAST', 'expires_at must be in the future')
    t.throws(() => resolveExpiry({ expires_at: '2026-02-28T12:00:00Z' }, LIMITS, NOW), error)
    t.throws(() => resolveExpiry({ expires_at: NOW.toISOString() }, LIMITS, NOW), error)
    t.strictSame(resolveExpiry({ expires_at: '2026-03-01T12:00:00.001Z' }, LIMITS, NOW), after(0.001), 'one millisecond later is fine')
  })

  t.test('an unparseable expires_at is refused', async (t) => {
    t.throws(() => resolveExpiry({ expires_at: 'tomorrow' }, LIMITS, NOW), badRequest('TESSERA_INVALID_EXPIRY', 'expires_at must be an RFC 3339 date-time'))
  })

  t.test('without expires_at or expires_in the default lifetime applies', async (t) => {
    t.strictSame(resolveExpiry({}, LIMITS, NOW), after(30 * DAY))
    t.strictSame(resolveExpiry({}, { defaultLifetime: 60, maxLifetime: 0 }, NOW), after(60))
  })

  t.test('with no default and no maximum, a token without expiry never expires', async (t) => {
    t.equal(resolveExpiry({}, UNLIMITED, NOW), null)
    t.equal(resolveExpiry({ expires_at: null }, UNLIMITED, NOW), null)
    t.equal(resolveExpiry({ expires_at: null }, { defaultLifetime: 60, maxLifetime: 0 }, NOW), null, 'an explicit null overrides the default')
  })

  t.test('expires_at null is refused when a maximum lifetime is configured, naming it', async (t) => {
    t.throws(() => resolveExpiry({ expires_at: null }, LIMITS, NOW), badRequest('TESSERA_EXPIRY_REQUIRED', 'tokens must expire on this server: the maximum lifetime is 31536000 seconds'))
  })

  t.test('a lifetime beyond the maximum is refused with a 400 naming the maximum', async (t) => {
    const error = badRequest('TESSERA_LIFETIME_TOO_LONG', 'the token lifetime exceeds the maximum of 31536000 seconds')
    t.throws(() => resolveExpiry({ expires_in: 366 * DAY }, LIMITS, NOW), error)
    t.throws(() => resolveExpiry({ expires_at: '2030-01-01T00:00:00Z' }, LIMITS, NOW), error)
  })

  t.test('expires_in of exactly the maximum is accepted; one second more is refused', async (t) => {
    t.strictSame(resolveExpiry({ expires_in: 365 * DAY }, LIMITS, NOW), after(365 * DAY))
    t.throws(() => resolveExpiry({ expires_in: 365 * DAY + 1 }, LIMITS, NOW), badRequest('TESSERA_LIFETIME_TOO_LONG', 'the token lifetime exceeds the maximum of 31536000 seconds'))
  })

  t.test('expires_at gets one second of clock slack beyond the maximum, and no more', async (t) => {
    t.strictSame(resolveExpiry({ expires_at: after(365 * DAY).toISOString() }, LIMITS, NOW), after(365 * DAY))
    t.strictSame(resolveExpiry({ expires_at: after(365 * DAY + 1).toISOString() }, LIMITS, NOW), after(365 * DAY + 1))
    t.throws(() => resolveExpiry({ expires_at: after(365 * DAY + 1.001).toISOString() }, LIMITS, NOW), badRequest('TESSERA_LIFETIME_TOO_LONG', 'the token lifetime exceeds the maximum of 31536000 seconds'))
  })
})

t.test('issueToken', async (t) => {
  // alice, no administrator, is given introspect tokens here: the policy allows it for this file.
  const app = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'everyone' })
  await seedUser(app, 'alice')
  await seedUser(app, 'bob')
  await seedUser(app, 'root', { admin: true })

  async function issue (username: string, input: Partial<NewTokenInput> = {}, options: { now?: Date, actor?: Actor } = {}): Promise<IssuedToken> {
    return await app.orm.em.fork().transactional(async (tx) => {
      const owner = await tx.findOneOrFail(User, { username })
      const application = await findInternalApplication(tx)
      if (application === null) throw new Error('internal application missing')
      return await issueToken(tx, app.services.issuer, {
        owner,
        application,
        input: { name: 'token', scopes: ['read:tokens'], ...input },
        actor: options.actor ?? SYSTEM_ACTOR,
        ...(options.now !== undefined ? { now: options.now } : {})
      })
    })
  }

  async function auditEventsFor (targetId: string): Promise<Array<Record<string, unknown>>> {
    return await app.orm.em.getConnection().execute('select action, actor, actor_id, target_type, target_id, target, details from audit_events where target_id = ?', [targetId])
  }

  async function tokenCount (): Promise<number> {
    const rows = await app.orm.em.getConnection().execute<Array<{ count: string | number }>>('select count(*) as count from access_tokens')
    return Number(rows[0]?.count)
  }

  t.test('stores the token with its scopes, audience and expiry, and returns the plaintext once', async (t) => {
    const issued = await issue('alice', { name: '  deploy  ', scopes: ['write:repository', 'introspect', 'write:repository'], audience: [' https://a.example ', 'https://a.example', 'https://b.example'], expires_in: 3600 })
    t.equal(isWellFormedToken(issued.plaintext, 'tsr'), true)
    const stored = await app.orm.em.fork().findOneOrFail(AccessToken, issued.token.id, { populate: ['digest'] })
    t.match(stored, {
      name: 'deploy',
      scopes: ['write:repository', 'introspect'],
      audience: ['https://a.example', 'https://b.example'],
      lastEight: issued.plaintext.slice(-8),
      digest: app.services.digester.digest(issued.plaintext),
      revokedAt: null
    })
    const lifetime = (stored.expiresAt?.getTime() ?? 0) - stored.createdAt.getTime()
    t.ok(Math.abs(lifetime - 3600_000) < 5000, `lifetime ${lifetime} ms`)
  })

  t.test('an empty audience list means unrestricted; an empty audience entry is refused', async (t) => {
    const issued = await issue('alice', { name: 'no-audience', audience: [] })
    t.equal(issued.token.audience, null)
    await t.rejects(issue('alice', { name: 'blank-audience', audience: ['https://a.example', ' '] }), badRequest('TESSERA_EMPTY_AUDIENCE', 'audience entries must not be empty'))
  })

  t.test('a blank or overlong name is refused', async (t) => {
    const error = badRequest('TESSERA_INVALID_TOKEN_NAME', 'name must be 1–100 characters (not only spaces)')
    await t.rejects(issue('alice', { name: '   ' }), error)
    await t.rejects(issue('alice', { name: 'x'.repeat(101) }), error)
    t.equal((await issue('alice', { name: 'x'.repeat(100) })).token.name, 'x'.repeat(100))
  })

  t.test('a name already used by a live token of the same owner is a 409', async (t) => {
    await issue('alice', { name: 'ci' })
    const before = await tokenCount()
    await t.rejects(issue('alice', { name: 'ci' }), { statusCode: 409, code: 'TESSERA_TOKEN_NAME_TAKEN', message: 'a live token named "ci" already exists for alice' })
    await t.rejects(issue('alice', { name: ' ci ' }), { statusCode: 409, code: 'TESSERA_TOKEN_NAME_TAKEN', message: 'a live token named "ci" already exists for alice' }, 'names are compared after trimming')
    t.equal(await tokenCount(), before, 'nothing was written')
    t.equal((await issue('bob', { name: 'ci' })).token.name, 'ci', 'another owner may use the same name')
  })

  t.test('a name becomes free again once its token is revoked', async (t) => {
    const first = await issue('alice', { name: 'rotating' })
    await app.orm.em.fork().transactional(async (tx) => {
      revokeToken(tx, await tx.findOneOrFail(AccessToken, first.token.id), SYSTEM_ACTOR, 'test')
    })
    const second = await issue('alice', { name: 'rotating' })
    t.not(second.token.id, first.token.id)
    t.not(second.plaintext, first.plaintext)
  })

  t.test('a name becomes free again once its token has expired', async (t) => {
    const yesterday = new Date(Date.now() - DAY * 1000)
    const expired = await issue('alice', { name: 'nightly', expires_in: 60 }, { now: yesterday })
    t.ok((expired.token.expiresAt?.getTime() ?? Infinity) < Date.now(), 'the first token has expired')
    const fresh = await issue('alice', { name: 'nightly' })
    t.not(fresh.token.id, expired.token.id)
    await t.rejects(issue('alice', { name: 'nightly' }), { statusCode: 409, code: 'TESSERA_TOKEN_NAME_TAKEN', message: 'a live token named "nightly" already exists for alice' }, 'the fresh one is live')
  })

  t.test('the admin scope is refused for a non-admin owner', async (t) => {
    await t.rejects(issue('alice', { name: 'escalate', scopes: ['read:tokens', 'admin'] }), {
      statusCode: 403,
      code: 'TESSERA_ADMIN_SCOPE_FORBIDDEN',
      message: 'only administrators may hold a token with the admin scope'
    })
    t.strictSame((await issue('root', { name: 'ops', scopes: ['admin'] })).token.scopes, ['admin'])
  })

  t.test('unknown scopes are refused with the list of valid ones', async (t) => {
    await t.rejects(issue('alice', { name: 'unknown', scopes: ['read:tokens', 'delete:world'] }), {
      statusCode: 400,
      code: 'TESSERA_INVALID_SCOPE',
      message: 'unknown scope delete:world; valid scopes are: admin introspect read:repository read:tokens write:repository write:tokens'
    })
  })

  t.test('the expiry limits apply: a lifetime beyond the maximum is a 400', async (t) => {
    await t.rejects(issue('alice', { name: 'forever', expires_at: null }), badRequest('TESSERA_EXPIRY_REQUIRED', `tokens must expire on this server: the maximum lifetime is ${app.config.TOKEN_MAX_LIFETIME} seconds`))
    await t.rejects(issue('alice', { name: 'too-long', expires_in: app.config.TOKEN_MAX_LIFETIME + 1 }), badRequest('TESSERA_LIFETIME_TOO_LONG', `the token lifetime exceeds the maximum of ${app.config.TOKEN_MAX_LIFETIME} seconds`))
  })

  t.test('a token.created audit event is written with the token', async (t) => {
    const actor: Actor = { id: null, label: 'cli', ip: '192.0.2.7', userAgent: 'tap' }
    const issued = await issue('alice', { name: 'audited', scopes: ['introspect'], expires_in: 60 }, { actor })
    t.strictSame(await auditEventsFor(issued.token.id), [{
      action: 'token.created',
      actor: 'cli',
      actor_id: null,
      target_type: 'token',
      target_id: issued.token.id,
      target: 'audited',
      details: { owner: 'alice', client_id: 'internal', scopes: ['introspect'], expires_at: issued.token.expiresAt?.toISOString() }
    }])
    t.notOk(JSON.stringify(await auditEventsFor(issued.token.id)).includes(issued.plaintext), 'the event holds no secret')
  })

  t.test('the token and its audit event commit or roll back together', async (t) => {
    let tokenId = ''
    const before = await tokenCount()
    await t.rejects(app.orm.em.fork().transactional(async (tx) => {
      const owner = await tx.findOneOrFail(User, { username: 'alice' })
      const application = await findInternalApplication(tx)
      if (application === null) throw new Error('internal application missing')
      const issued = await issueToken(tx, app.services.issuer, { owner, application, input: { name: 'doomed', scopes: ['read:tokens'] }, actor: SYSTEM_ACTOR })
      tokenId = issued.token.id
      await tx.flush()
      throw new Error('something later in the same transaction failed')
    }), { message: 'something later in the same transaction failed' })
    t.not(tokenId, '')
    t.equal(await tokenCount(), before, 'no token row')
    t.strictSame(await auditEventsFor(tokenId), [], 'no audit event')
  })
})

t.test('issueToken with TOKEN_MAX_LIFETIME=0 accepts a token that never expires', async (t) => {
  const app = await build(t, { TOKEN_MAX_LIFETIME: '0', TOKEN_DEFAULT_LIFETIME: '0' })
  await seedUser(app, 'carol')
  const forever = await seedToken(app, 'carol', { name: 'forever', expires_at: null })
  const byDefault = await seedToken(app, 'carol', { name: 'default' })
  const rows = await app.orm.em.getConnection().execute<Array<{ name: string, expires_at: Date | null }>>('select name, expires_at from access_tokens order by name')
  t.strictSame(rows, [{ name: 'default', expires_at: null }, { name: 'forever', expires_at: null }])
  t.match(await app.services.resolver.resolve(forever.token), { id: forever.id, expiresAt: null })
  t.match(await app.services.resolver.resolve(byDefault.token), { id: byDefault.id, expiresAt: null })
})
