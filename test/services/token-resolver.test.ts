import { createHash, createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { AccessToken } from '../../src/entities/access-token.js'
import { Application } from '../../src/entities/application.js'
import { User } from '../../src/entities/user.js'
import { SYSTEM_ACTOR } from '../../src/services/audit.js'
import { ScopeCatalogue } from '../../src/services/scopes.js'
import { TokenCache } from '../../src/services/token-cache.js'
import { generateToken, SecretDigester } from '../../src/services/token-format.js'
import { isActive, TokenResolver, type TokenRecord } from '../../src/services/token-resolver.js'
import { Interner } from '../../src/services/interner.js'
import { recordFromRow, type TokenRow } from '../../src/services/token-store.js'
import { issueToken, revokeToken } from '../../src/services/tokens.js'
import { build, seedApplication, seedToken, seedUser } from '../helper.js'

const HMAC_KEY = 'a-server-key-of-at-least-32-characters!'
const catalogue = ScopeCatalogue.fromConfiguration('read:repository write:repository')

function row (overrides: Partial<TokenRow> = {}): TokenRow {
  return {
    id: '0190b5d2-0000-7000-8000-000000000001',
    scopes: ['write:repository', 'introspect'],
    audience: null,
    user_id: '0190b5d2-0000-7000-8000-0000000000aa',
    username: 'alice',
    suspended_at: null,
    owner_admin: true,
    application_id: '0190b5d2-0000-7000-8000-0000000000bb',
    client_id: 'internal',
    application_scopes: [],
    introspection_audiences: null,
    introspection_scopes: null,
    created_at: new Date('2026-01-02T03:04:05.678Z'),
    expires_at: new Date('2026-04-02T03:04:05.678Z'),
    revoked_at: null,
    ...overrides
  }
}

function cache (): TokenCache {
  return new TokenCache({ maxEntries: 100, maxBytes: 0, ttl: 30, negativeTtl: 5 })
}

async function revoke (app: FastifyInstance, id: string): Promise<boolean> {
  return await app.orm.em.fork().transactional(async (tx) => {
    const token = await tx.findOneOrFail(AccessToken, id)
    return revokeToken(tx, token, SYSTEM_ACTOR, 'test')
  })
}

async function dumpDatabase (app: FastifyInstance): Promise<string> {
  const connection = app.orm.em.getConnection()
  const tables: Record<string, unknown> = {}
  for (const table of ['access_tokens', 'users', 'applications', 'audit_events']) {
    tables[table] = await connection.execute(`select * from ${table}`)
  }
  return JSON.stringify(tables)
}

t.test('recordFromRow maps a database row to what the hot path needs', async (t) => {
  t.strictSame(recordFromRow(row(), catalogue), {
    id: '0190b5d2-0000-7000-8000-000000000001',
    scopes: ['write:repository', 'introspect'],
    effectiveScope: 'write:repository introspect read:repository',
    audience: null,
    userId: '0190b5d2-0000-7000-8000-0000000000aa',
    username: 'alice',
    applicationId: '0190b5d2-0000-7000-8000-0000000000bb',
    clientId: 'internal',
    createdAt: Math.floor(Date.parse('2026-01-02T03:04:05.678Z') / 1000),
    expiresAt: Date.parse('2026-04-02T03:04:05.678Z'),
    revoked: false,
    ownerActive: true,
    introspectionPolicy: null,
    introspectionJson: undefined,
    tokenInfo: undefined,
    gatewayIdentity: undefined
  } satisfies TokenRecord)
})

t.test('records read through one store share what their rows repeat (owner, application, scopes), not what is their own', async (t) => {
  // Two rows as pg returns them: equal values in distinct strings and arrays.
  const copy = (text: string): string => Buffer.from(text).toString()
  const rowOf = (id: string): TokenRow => row({
    id,
    scopes: [copy('write:repository'), copy('introspect')],
    user_id: copy('0190b5d2-0000-7000-8000-0000000000aa'),
    username: copy('alice'),
    application_id: copy('0190b5d2-0000-7000-8000-0000000000bb'),
    client_id: copy('internal')
  })
  const shared = new Interner()
  const first = recordFromRow(rowOf('0190b5d2-0000-7000-8000-000000000001'), catalogue, shared)
  const second = recordFromRow(rowOf('0190b5d2-0000-7000-8000-000000000002'), catalogue, shared)
  t.equal(second.scopes, first.scopes, 'one scopes list')
  t.equal(second.effectiveScope, first.effectiveScope)
  t.not(second.id, first.id)
  t.not(recordFromRow(rowOf('0190b5d2-0000-7000-8000-000000000003'), catalogue).scopes, first.scopes, 'another store shares nothing with this one')
})

t.test('the interner gives back the first of equal values, and starts afresh past its bound', async (t) => {
  const shared = new Interner(2)
  const a = ['x', 'y']
  t.equal(shared.list(['x', 'y']), shared.list(a), 'equal lists: the first one')
  t.equal(shared.list(null), null)
  t.equal(shared.string(null), null)
  t.equal(shared.string('u'), 'u')
  const kept = shared.list(['p'])
  t.equal(shared.list(['p']), kept)
  shared.list(['q'])
  t.not(shared.list(['p']), kept, 'past two distinct lists it started afresh')
})

t.test('what a user token grants follows its owner\'s rights now: a demoted admin\'s token loses admin and introspect', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('read:repository write:repository')
  const granted = ['admin', 'introspect', 'write:repository']
  t.equal(recordFromRow(row({ scopes: granted, owner_admin: true }), catalogue).effectiveScope, 'admin introspect write:repository read:repository')
  t.equal(recordFromRow(row({ scopes: granted, owner_admin: false }), catalogue).effectiveScope, 'write:repository read:repository')
  t.strictSame(recordFromRow(row({ scopes: granted, owner_admin: false }), catalogue).scopes, granted, 'the scopes as granted are kept for listings')
  const everyone = ScopeCatalogue.fromConfiguration('', 'everyone')
  t.equal(recordFromRow(row({ scopes: ['introspect'], owner_admin: false }), everyone).effectiveScope, 'introspect', 'PERSONAL_INTROSPECT_TOKENS=everyone')
  const nobody = ScopeCatalogue.fromConfiguration('', 'nobody')
  t.equal(recordFromRow(row({ scopes: ['introspect'], owner_admin: true }), nobody).effectiveScope, '', 'PERSONAL_INTROSPECT_TOKENS=nobody')
})

t.test('an application\'s own token grants only what the application holds now, and carries its introspection limits', async (t) => {
  const application = row({
    user_id: null,
    username: null,
    owner_admin: null,
    scopes: ['introspect', 'write:repository'],
    application_scopes: ['introspect', 'read:repository'],
    introspection_audiences: ['billing'],
    introspection_scopes: []
  })
  const record = recordFromRow(application, catalogue)
  t.equal(record.effectiveScope, 'introspect read:repository', 'write:repository was taken from the application')
  t.strictSame(record.introspectionPolicy, { audiences: ['billing'], scopes: null })
})

t.test('recordFromRow accepts dates as strings, and an empty audience means unrestricted', async (t) => {
  const record = recordFromRow(row({ created_at: '2026-01-02 03:04:05.678+00', expires_at: null, audience: [] }), catalogue)
  t.equal(record.createdAt, 1767323045)
  t.equal(record.expiresAt, null)
  t.equal(record.audience, null)
  t.strictSame(recordFromRow(row({ audience: ['https://api.example.com'] }), catalogue).audience, ['https://api.example.com'])
})

t.test('recordFromRow marks revoked tokens and inactive owners', async (t) => {
  t.equal(recordFromRow(row({ revoked_at: new Date() }), catalogue).revoked, true)
  t.equal(recordFromRow(row({ suspended_at: new Date() }), catalogue).ownerActive, false, 'suspended owner')
  t.equal(recordFromRow(row({ username: null }), catalogue).ownerActive, false, 'owner row gone')
  t.equal(recordFromRow(row({ user_id: null, username: null }), catalogue).ownerActive, true, 'a token without an owner')
})

t.test('isActive: not revoked, owner active, and not yet expired', async (t) => {
  const now = Date.parse('2026-03-01T00:00:00Z')
  const record = recordFromRow(row(), catalogue)
  t.equal(isActive(record, now), true)
  t.equal(isActive({ ...record, expiresAt: null }, now), true)
  t.equal(isActive({ ...record, expiresAt: now + 1 }, now), true)
  t.equal(isActive({ ...record, expiresAt: now }, now), false, 'expired at the very millisecond')
  t.equal(isActive({ ...record, expiresAt: now - 1 }, now), false)
  t.equal(isActive({ ...record, revoked: true }, now), false)
  t.equal(isActive({ ...record, ownerActive: false }, now), false)
})

t.test('malformed tokens resolve to null without touching the store', async (t) => {
  const resolver = new TokenResolver({
    prefix: 'tsr',
    digester: new SecretDigester(''),
    cache: cache(),
    lookup: async () => {
      t.fail('the store must not be asked about a malformed token')
      return null
    }
  })
  const good = generateToken('tsr')
  const malformed = [
    '',
    'not a token',
    generateToken('abc'),
    good.slice(0, -1),
    good + 'x',
    good.slice(0, 10) + (good[10] === 'a' ? 'b' : 'a') + good.slice(11),
    good.replace('tsr_', 'tsr-')
  ]
  for (const token of malformed) {
    t.equal(resolver.isWellFormed(token), false)
    t.equal(await resolver.resolve(token), null)
  }
  t.equal(resolver.isWellFormed(good), true)
})

t.test('a failing store makes resolve reject: never active, nothing cached', async (t) => {
  const tokenCache = cache()
  const resolver = new TokenResolver({
    prefix: 'tsr',
    digester: new SecretDigester(''),
    cache: tokenCache,
    lookup: async () => { throw new Error('connection refused') }
  })
  await t.rejects(resolver.resolve(generateToken('tsr')), { message: 'connection refused' })
  t.equal(tokenCache.size, 0)
})

t.test('with a database', async (t) => {
  // alice, no administrator, holds an introspect token here: the policy allows it for this block.
  const app = await build(t, { PERSONAL_INTROSPECT_TOKENS: 'everyone' })
  const { resolver, cache, digester } = app.services

  t.test('an active token resolves to its record', async (t) => {
    const user = await seedUser(app, 'alice')
    const before = Date.now()
    const { token, id } = await seedToken(app, 'alice', { name: 'ci', scopes: ['write:repository', 'introspect'] })
    const record = await resolver.resolve(token)
    t.match(record, {
      id,
      scopes: ['write:repository', 'introspect'],
      effectiveScope: 'write:repository introspect read:repository',
      audience: null,
      userId: user.id,
      username: 'alice',
      clientId: 'internal',
      revoked: false,
      ownerActive: true
    })
    const lifetime = app.config.TOKEN_DEFAULT_LIFETIME * 1000
    t.ok(record !== null && record.expiresAt !== null && record.expiresAt >= before + lifetime && record.expiresAt <= Date.now() + lifetime, 'expires after the default lifetime')
  })

  t.test('a second resolve is served by the cache', async (t) => {
    await seedUser(app, 'bruno')
    const { token, id } = await seedToken(app, 'bruno')
    t.equal((await resolver.resolve(token))?.id, id)
    const hits = cache.stats.hits
    const misses = cache.stats.misses
    t.equal((await resolver.resolve(token))?.id, id)
    t.equal(cache.stats.hits, hits + 1)
    t.equal(cache.stats.misses, misses)
  })

  t.test('a well-formed unknown token resolves to null and is remembered as unknown', async (t) => {
    const token = generateToken(app.config.TOKEN_PREFIX)
    t.equal(await resolver.resolve(token), null)
    t.equal(cache.get(digester.cacheKey(token)), null, 'remembered as unknown under its cache key')
    t.equal(await app.services.store.token(digester.digest(token)), null)
  })

  t.test('an expired token resolves to null, even when it was cached while active', async (t) => {
    await seedUser(app, 'carla')
    const { token, id } = await seedToken(app, 'carla', { expires_in: 1 })
    const record = await resolver.resolve(token)
    t.equal(record?.id, id)
    await sleep(Math.max(0, (record?.expiresAt ?? 0) - Date.now()) + 20)
    t.equal(await resolver.resolve(token), null)
    t.match(await app.services.store.token(digester.digest(token)), { id, revoked: false, ownerActive: true })
  })

  t.test('a revoked token resolves to null once its cache entry is dropped', async (t) => {
    await seedUser(app, 'dmitri')
    const { token, id } = await seedToken(app, 'dmitri')
    t.equal((await resolver.resolve(token))?.id, id)
    t.equal(await revoke(app, id), true)
    t.equal(cache.invalidateToken(id), 1)
    t.equal(await resolver.resolve(token), null)
    t.match(await app.services.store.token(digester.digest(token)), { id, revoked: true })
  })

  t.test('a revocation committed while a lookup is in flight is not undone by caching its stale answer', async (t) => {
    await seedUser(app, 'ingrid')
    const { token, id } = await seedToken(app, 'ingrid')
    const ownCache = new TokenCache({ maxEntries: 100, maxBytes: 0, ttl: 30, negativeTtl: 5 })
    let rowRead!: () => void
    const read = new Promise<void>((resolve) => { rowRead = resolve })
    let release!: () => void
    const released = new Promise<void>((resolve) => { release = resolve })
    // The real lookup, held back between reading the row and returning it.
    const racing = new TokenResolver({
      prefix: app.config.TOKEN_PREFIX,
      digester,
      cache: ownCache,
      async lookup (digest) {
        const record = await app.services.store.token(digest)
        rowRead()
        await released
        return record
      }
    })
    const inFlight = racing.resolve(token)
    await read
    t.equal(await revoke(app, id), true)
    t.equal(ownCache.invalidateToken(id), 0, 'nothing was cached yet')
    release()
    t.equal((await inFlight)?.id, id, 'the request that began before the revocation may still see it active')
    t.equal(ownCache.size, 0, 'but its answer is not cached')
    t.equal(await racing.resolve(token), null, 'the next request sees the revocation')
  })

  t.test("a suspended owner's tokens resolve to null", async (t) => {
    const user = await seedUser(app, 'elena')
    const first = await seedToken(app, 'elena')
    const second = await seedToken(app, 'elena')
    t.ok(await resolver.resolve(first.token))
    t.ok(await resolver.resolve(second.token))
    const em = app.orm.em.fork()
    const loaded = await em.findOneOrFail(User, user.id)
    loaded.suspendedAt = new Date()
    await em.flush()
    t.equal(cache.invalidateUser(user.id), 2)
    t.equal(await resolver.resolve(first.token), null)
    t.equal(await resolver.resolve(second.token), null)
    t.match(await app.services.store.token(digester.digest(first.token)), { id: first.id, revoked: false, ownerActive: false })
  })

  t.test("a deleted owner's tokens resolve to null", async (t) => {
    const user = await seedUser(app, 'fatima')
    const { token } = await seedToken(app, 'fatima')
    t.ok(await resolver.resolve(token))
    await app.orm.em.fork().nativeDelete(User, { id: user.id })
    t.equal(cache.invalidateUser(user.id), 1)
    t.equal(await resolver.resolve(token), null)
  })

  t.test("an application's own token (no owner) resolves as active", async (t) => {
    const client = await seedApplication(app, ['introspect'])
    const issued = await app.orm.em.fork().transactional(async (tx) => {
      const application = await tx.findOneOrFail(Application, client.id)
      return await issueToken(tx, app.services.issuer, { owner: null, application, input: { name: 'service', scopes: ['introspect'] }, actor: SYSTEM_ACTOR })
    })
    t.match(await resolver.resolve(issued.plaintext), { id: issued.token.id, userId: null, username: null, clientId: client.clientId, ownerActive: true })
  })

  t.test('the plaintext token is stored nowhere; the digest column is its SHA-256', async (t) => {
    await seedUser(app, 'gustav')
    const { token, id } = await seedToken(app, 'gustav', { name: 'secret-keeper' })
    const dump = await dumpDatabase(app)
    t.ok(dump.includes(id), 'the dump does contain the token row')
    t.notOk(dump.includes(token), 'the plaintext is not in the database')
    t.notOk(dump.includes(token.slice(0, -8)), 'nor the part before its last eight characters')
    t.notOk(dump.includes(token.slice(4, 4 + 24)), 'nor the first 24 characters of its random body')
    const rows = await app.orm.em.getConnection().execute<Array<{ digest: string, last_eight: string }>>('select digest, last_eight from access_tokens where id = ?', [id])
    t.strictSame(rows, [{ digest: createHash('sha256').update(token).digest('hex'), last_eight: token.slice(-8) }])
  })
})

t.test('with TOKEN_HMAC_KEY, the digest column is the HMAC-SHA256 of the plaintext', async (t) => {
  const app = await build(t, { TOKEN_HMAC_KEY: HMAC_KEY })
  await seedUser(app, 'hana')
  const { token, id } = await seedToken(app, 'hana')
  const rows = await app.orm.em.getConnection().execute<Array<{ digest: string }>>('select digest from access_tokens where id = ?', [id])
  t.strictSame(rows, [{ digest: createHmac('sha256', HMAC_KEY).update(token).digest('hex') }])
  t.not(rows[0]?.digest, createHash('sha256').update(token).digest('hex'))
  t.notOk((await dumpDatabase(app)).includes(token), 'the plaintext is not in the database')
  t.equal((await app.services.resolver.resolve(token))?.id, id)
})
