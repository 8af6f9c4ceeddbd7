import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t, { type Test } from 'tap'
import { CacheFreshness } from '../../src/services/cache-freshness.js'
import { ClientAuthenticator, type ClientRow } from '../../src/services/client-auth.js'
import {
  CacheInvalidation,
  decode,
  encode,
  INVALIDATION_CHANNEL,
  InvalidationListener,
  type Change,
  type ListenerClient,
  type ListenerState
} from '../../src/services/invalidation.js'
import { PasswordHasher } from '../../src/services/passwords.js'
import { TokenCache } from '../../src/services/token-cache.js'
import type { TokenRecord } from '../../src/services/token-resolver.js'
import { createTestDatabase, TEST_ENV } from '../helper.js'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `predicate` every few milliseconds until it holds; fails after `timeout` ms (generous: a loaded machine). */
async function until (predicate: () => boolean, timeout = 5000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeout
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await sleep(2)
  }
}

// ---------------------------------------------------------------------------------------------
// Real collaborators: a TokenCache, and a ClientAuthenticator with the real (cheap) argon2id and
// a lookup function standing in for the applications table (it returns rows as the query would).
// ---------------------------------------------------------------------------------------------

const hasher = new PasswordHasher({ memoryCost: Number(TEST_ENV.ARGON2_MEMORY_COST), timeCost: Number(TEST_ENV.ARGON2_TIME_COST) })

let sequence = 0
function record (overrides: Partial<TokenRecord> = {}): TokenRecord {
  sequence++
  return {
    id: randomUUID(),
    scopes: ['read:tokens'],
    effectiveScope: 'read:tokens',
    audience: null,
    userId: randomUUID(),
    username: `user${sequence}`,
    applicationId: randomUUID(),
    clientId: 'internal',
    createdAt: 1_700_000_000,
    expiresAt: null,
    revoked: false,
    ownerActive: true,
    introspectionPolicy: null,
    ...overrides
  }
}

function digest (label: string | number): string {
  return String(label).padStart(64, '0')
}

interface Registered { id: string, clientId: string, secret: string }

/** An in-memory applications table for the authenticator's lookup, counting lookups. */
class Applications {
  readonly rows = new Map<string, ClientRow>()
  lookups = 0
  /** When set, every lookup waits for it (to hold a verification in flight). */
  gate: Promise<void> | null = null

  async add (secret = `secret-${randomUUID()}`): Promise<Registered> {
    const id = randomUUID()
    const clientId = `client-${id.slice(0, 8)}`
    this.rows.set(clientId, {
      id,
      client_id: clientId,
      name: `app ${clientId}`,
      client_secret_hash: await hasher.hash(secret),
      scopes: ['introspect'],
      introspection_audiences: null,
      introspection_scopes: null
    })
    return { id, clientId, secret }
  }

  async rotate (clientId: string, secret: string): Promise<void> {
    const row = this.rows.get(clientId)
    if (row === undefined) throw new Error(`no application ${clientId}`)
    this.rows.set(clientId, { ...row, client_secret_hash: await hasher.hash(secret) })
  }

  readonly lookup = async (clientId: string): Promise<ClientRow | null> => {
    this.lookups++
    // Read the row before waiting: a verification in flight holds what it read.
    const row = this.rows.get(clientId) ?? null
    if (this.gate !== null) await this.gate
    return row
  }
}

function caches (options: { freshness?: CacheFreshness, ttl?: number, negativeTtl?: number, clientTtl?: number } = {}): { cache: TokenCache, clients: ClientAuthenticator, applications: Applications, freshness: CacheFreshness } {
  const freshness = options.freshness ?? new CacheFreshness(5)
  const applications = new Applications()
  const cache = new TokenCache({ maxEntries: 1000, maxBytes: 0, ttl: options.ttl ?? 30, negativeTtl: options.negativeTtl ?? 5, freshness })
  const clients = new ClientAuthenticator({ lookup: applications.lookup, hasher, ttlSeconds: options.clientTtl ?? 60, freshness })
  return { cache, clients, applications, freshness }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let release: () => void = () => {}
  const promise = new Promise<void>((resolve) => { release = resolve })
  return { promise, resolve: () => { release() } }
}

// ---------------------------------------------------------------------------------------------
// The wire format
// ---------------------------------------------------------------------------------------------

t.test('encode and decode round-trip every kind of change', async (t) => {
  const origin = randomUUID()
  const changes: Change[] = [
    { kind: 'tokens', ids: [randomUUID()] },
    { kind: 'tokens', ids: [randomUUID(), randomUUID(), randomUUID()] },
    { kind: 'user', id: randomUUID() },
    { kind: 'application', id: randomUUID() },
    { kind: 'client', id: randomUUID() }
  ]
  const publishedAt = Date.now()
  for (const change of changes) {
    const payloads = encode(origin, change, publishedAt)
    t.equal(payloads.length, 1, `${change.kind}: one message`)
    t.strictSame(decode(payloads[0] ?? ''), { origin, publishedAt, change }, `${change.kind} survives the trip`)
  }
  // A replica from before the publish time was carried (a rolling upgrade) is still understood.
  const id = randomUUID()
  t.strictSame(decode(`${origin} t:${id}`), { origin, publishedAt: null, change: { kind: 'tokens', ids: [id] } })
})

t.test('a change from another replica is measured: publish → applied lag in the histogram', async (t) => {
  const invalidation = new CacheInvalidation({ cache: new TokenCache({ maxEntries: 10, maxBytes: 0, ttl: 30, negativeTtl: 5 }), clients: new ClientAuthenticator({ hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1 }), lookup: async () => null, ttlSeconds: 60 }) })
  invalidation.receive(encode(randomUUID(), { kind: 'user', id: randomUUID() }, Date.now() - 300)[0] ?? '')
  invalidation.receive(encode(invalidation.instanceId, { kind: 'user', id: randomUUID() }, Date.now() - 300)[0] ?? '')
  invalidation.receive(`${randomUUID()} u:${randomUUID()}`)
  const { values } = await invalidation.lag.get()
  const count = values.find((value) => value.metricName === 'tessera_cache_invalidation_lag_seconds_count')?.value
  const sum = values.find((value) => value.metricName === 'tessera_cache_invalidation_lag_seconds_sum')?.value ?? 0
  t.equal(count, 1, 'only the other replica\'s timed message: not our own, not one without a time')
  t.ok(sum >= 0.3 && sum < 1, `lag ${sum} s`)
  const under = (le: number): number | undefined => values.find((value) => value.metricName === 'tessera_cache_invalidation_lag_seconds_bucket' && value.labels.le === le)?.value
  t.equal(under(0.25), 0)
  t.equal(under(0.5), 1)
})

t.test('more than 150 token ids are split into several payloads, each under the 8000-byte NOTIFY limit', async (t) => {
  const origin = randomUUID()
  for (const count of [150, 151, 300, 301, 1000]) {
    const ids = Array.from({ length: count }, () => randomUUID())
    const payloads = encode(origin, { kind: 'tokens', ids })
    t.equal(payloads.length, Math.ceil(count / 150), `${count} ids: ${Math.ceil(count / 150)} payloads`)
    for (const payload of payloads) t.ok(Buffer.byteLength(payload, 'utf8') < 8000, `a payload of ${Buffer.byteLength(payload, 'utf8')} bytes`)
    const decoded = payloads.map((payload) => decode(payload))
    t.ok(decoded.every((message) => message?.origin === origin && message.change.kind === 'tokens'), 'every payload decodes, with the origin')
    const received = decoded.flatMap((message) => message?.change.kind === 'tokens' ? message.change.ids : [])
    t.strictSame(received, ids, 'all ids, in order, none twice')
  }
})

t.test('malformed payloads decode to null', async (t) => {
  const id = randomUUID()
  const malformed = [
    '',
    'garbage',
    `${id}`,
    `origin x:${id}`, // unknown kind
    'origin t:', // no id
    `origin t:${id},`, // dangling comma
    `origin t:${id.toUpperCase()}`, // not lower-case hex
    `origin t:${id}0`, // longer than a UUID
    'origin t:not-an-id!',
    `origin u:${id},${randomUUID()}`, // a user change names one user
    `origin a:${id},${randomUUID()}`,
    `origin c:${id},${randomUUID()}`,
    ` t:${id}`, // no origin
    `origin  t:${id}`,
    `origin t:${id}\n`,
    `origin t:${id} extra`,
    `origin 12x t:${id}`, // a time that is not a number
    `origin 1234567890123456 t:${id}`, // past any millisecond time
    `origin  1700000000000 t:${id}`,
    `{"origin":"x","kind":"tokens","ids":["${id}"]}`
  ]
  for (const payload of malformed) t.equal(decode(payload), null, JSON.stringify(payload))
})

// ---------------------------------------------------------------------------------------------
// CacheInvalidation: local application, publishing, receiving
// ---------------------------------------------------------------------------------------------

t.test('a received change is applied to the real caches; malformed ones and our own are ignored', async (t) => {
  const { cache, clients, applications } = caches()
  const invalidation = new CacheInvalidation({ cache, clients })
  const other = randomUUID()
  const victim = record()
  const bystander = record()
  cache.set(digest(1), victim)
  cache.set(digest(2), bystander)

  for (const payload of ['', 'nonsense', `${other} x:${victim.id}`, `${other} u:${victim.userId ?? ''},${bystander.userId ?? ''}`]) invalidation.receive(payload)
  t.equal(invalidation.stats.received, 0, 'malformed messages are not counted')
  t.equal(cache.get(digest(1)), victim, 'and change nothing')

  invalidation.receive(encode(invalidation.instanceId, { kind: 'tokens', ids: [victim.id] })[0] ?? '')
  t.equal(invalidation.stats.received, 0, 'our own message (already applied locally) is ignored')
  t.equal(cache.get(digest(1)), victim)

  invalidation.receive(encode(other, { kind: 'tokens', ids: [victim.id] })[0] ?? '')
  t.equal(invalidation.stats.received, 1)
  t.equal(cache.get(digest(1)), undefined, 'another instance\'s message drops the token')
  t.equal(cache.get(digest(2)), bystander, 'and only that token')
  t.equal(applications.lookups, 0)
})

t.test('each kind of change drops exactly what it names', async (t) => {
  const other = randomUUID()

  t.test('tokens: those ids, every one of them, across several payloads', async (t) => {
    const { cache, clients } = caches()
    const invalidation = new CacheInvalidation({ cache, clients })
    const records = Array.from({ length: 320 }, () => record())
    records.forEach((entry, n) => { cache.set(digest(n), entry) })
    cache.setUnknown(digest('unknown'))
    const revoked = records.filter((_, n) => n % 2 === 0)
    const payloads = encode(other, { kind: 'tokens', ids: revoked.map((entry) => entry.id) })
    t.equal(payloads.length, 2)
    for (const payload of payloads) invalidation.receive(payload)
    t.equal(invalidation.stats.received, 2)
    records.forEach((entry, n) => { t.equal(cache.get(digest(n)) === undefined, n % 2 === 0, `token ${n}`) })
    t.equal(cache.get(digest('unknown')), null, 'a negative entry is untouched')
  })

  t.test('user: every token of that user', async (t) => {
    const { cache, clients } = caches()
    const invalidation = new CacheInvalidation({ cache, clients })
    const userId = randomUUID()
    const own = [record({ userId }), record({ userId })]
    const foreign = record()
    own.forEach((entry, n) => { cache.set(digest(n), entry) })
    cache.set(digest('foreign'), foreign)
    invalidation.receive(encode(other, { kind: 'user', id: userId })[0] ?? '')
    t.equal(cache.get(digest(0)), undefined)
    t.equal(cache.get(digest(1)), undefined)
    t.equal(cache.get(digest('foreign')), foreign)
  })

  t.test('application: its tokens and its verified credentials', async (t) => {
    const { cache, clients, applications } = caches()
    const invalidation = new CacheInvalidation({ cache, clients })
    const deleted = await applications.add()
    const kept = await applications.add()
    cache.set(digest('deleted'), record({ applicationId: deleted.id, userId: null, username: null }))
    const keptToken = record({ applicationId: kept.id })
    cache.set(digest('kept'), keptToken)
    t.ok(await clients.authenticate(deleted.clientId, deleted.secret))
    t.ok(await clients.authenticate(kept.clientId, kept.secret))
    t.equal(clients.size, 2)
    applications.rows.delete(deleted.clientId)

    invalidation.receive(encode(other, { kind: 'application', id: deleted.id })[0] ?? '')
    t.equal(cache.get(digest('deleted')), undefined, 'the application\'s token is dropped')
    t.equal(cache.get(digest('kept')), keptToken)
    t.equal(clients.size, 1, 'its credential is forgotten')
    t.equal(await clients.authenticate(deleted.clientId, deleted.secret), null, 'so the deleted application no longer authenticates')
    const lookups = applications.lookups
    t.ok(await clients.authenticate(kept.clientId, kept.secret))
    t.equal(applications.lookups, lookups, 'the other application is still remembered')
  })

  t.test('client: the verified credentials only (a rotated secret), not the tokens', async (t) => {
    const { cache, clients, applications } = caches()
    const invalidation = new CacheInvalidation({ cache, clients })
    const rotated = await applications.add('old-secret-value')
    const token = record({ applicationId: rotated.id })
    cache.set(digest(1), token)
    t.ok(await clients.authenticate(rotated.clientId, 'old-secret-value'))
    await applications.rotate(rotated.clientId, 'new-secret-value')
    t.ok(await clients.authenticate(rotated.clientId, 'old-secret-value'), 'before the message the old secret is still remembered here')

    invalidation.receive(encode(other, { kind: 'client', id: rotated.id })[0] ?? '')
    t.equal(await clients.authenticate(rotated.clientId, 'old-secret-value'), null, 'the old secret is refused once the message arrived')
    t.ok(await clients.authenticate(rotated.clientId, 'new-secret-value'), 'the new one works')
    t.equal(cache.get(digest(1)), token, 'the application\'s tokens stay cached')
  })
})

t.test('publish applies the change here first, then announces it; a failed announcement never fails the caller', async (t) => {
  const { cache, clients } = caches()
  const sent: string[] = []
  const order: string[] = []
  const target = record()
  cache.set(digest(1), target)
  const invalidation = new CacheInvalidation({
    cache,
    clients,
    notify: async (payload) => {
      order.push(cache.get(digest(1)) === undefined ? 'notify after local apply' : 'notify before local apply')
      sent.push(payload)
    }
  })

  await invalidation.tokens([target.id])
  t.strictSame(order, ['notify after local apply'])
  t.strictSame(sent.map((payload) => decode(payload)), [{ origin: invalidation.instanceId, publishedAt: decode(sent[0] ?? '')?.publishedAt, change: { kind: 'tokens', ids: [target.id] } }])
  t.ok(Math.abs((decode(sent[0] ?? '')?.publishedAt ?? 0) - Date.now()) < 5000, 'it carries the time it was published')
  t.equal(invalidation.stats.published, 1)

  const many = Array.from({ length: 200 }, () => randomUUID())
  await invalidation.tokens(many)
  t.equal(sent.length, 3, '200 ids: two more payloads')
  t.equal(invalidation.stats.published, 3)

  await invalidation.tokens([])
  t.equal(sent.length, 3, 'nothing to announce for no tokens')

  const userId = randomUUID()
  const applicationId = randomUUID()
  const clientApp = randomUUID()
  await invalidation.user(userId)
  await invalidation.application(applicationId)
  await invalidation.client(clientApp)
  t.strictSame(sent.slice(3).map((payload) => decode(payload)?.change), [
    { kind: 'user', id: userId },
    { kind: 'application', id: applicationId },
    { kind: 'client', id: clientApp }
  ])

  t.test('a notify that throws is counted and reported, and the local change stands', async (t) => {
    const errors: unknown[] = []
    const failing = new CacheInvalidation({
      cache,
      clients,
      notify: async () => { throw new Error('connection refused') },
      onPublishError: (error) => { errors.push(error) }
    })
    const revoked = record()
    cache.set(digest(2), revoked)
    await t.resolves(failing.tokens([revoked.id]))
    t.equal(cache.get(digest(2)), undefined)
    t.equal(failing.stats.publishFailures, 1)
    t.equal(failing.stats.published, 0)
    t.equal(errors.length, 1)
    t.match(errors[0], { message: 'connection refused' })
    await t.resolves(failing.tokens(Array.from({ length: 151 }, () => randomUUID())))
    t.equal(failing.stats.publishFailures, 3, 'every payload is attempted')
  })

  t.test('without notify (the embedded database) the change is only applied here', async (t) => {
    const local = new CacheInvalidation({ cache, clients })
    const revoked = record()
    cache.set(digest(3), revoked)
    await local.tokens([revoked.id])
    t.equal(cache.get(digest(3)), undefined)
    t.strictSame(local.stats, { published: 0, received: 0, publishFailures: 0 })
  })
})

t.test('clearAll empties both caches', async (t) => {
  const { cache, clients, applications } = caches()
  const invalidation = new CacheInvalidation({ cache, clients })
  const app = await applications.add()
  cache.set(digest(1), record())
  cache.setUnknown(digest(2))
  await clients.authenticate(app.clientId, app.secret)
  invalidation.clearAll()
  t.equal(cache.size, 0)
  t.equal(clients.size, 0)
  await clients.authenticate(app.clientId, app.secret)
  t.equal(applications.lookups, 2, 'the credential is verified again')
})

// ---------------------------------------------------------------------------------------------
// CacheFreshness and the caches while degraded
// ---------------------------------------------------------------------------------------------

t.test('CacheFreshness: full lifetimes while the channel is up, the short bound while it is down', async (t) => {
  const freshness = new CacheFreshness(5)
  const now = Date.now()
  t.equal(freshness.degradedTtlMs, 5000)
  t.equal(freshness.degraded, false)
  t.equal(freshness.lifetime(30_000), 30_000)
  t.equal(freshness.trusts(now - 3_600_000, now), true, 'any age is trusted while up')

  freshness.degrade(now)
  t.equal(freshness.degraded, true)
  t.equal(freshness.lifetime(30_000), 5000, 'new entries get the short lifetime')
  t.equal(freshness.lifetime(2000), 2000, 'never longer than asked for')
  t.equal(freshness.trusts(now - 3_600_000, now + 4999), true, 'an old entry: trusted until degradedTtl after the degradation')
  t.equal(freshness.trusts(now - 3_600_000, now + 5000), false)
  t.equal(freshness.trusts(now + 2000, now + 6999), true, 'an entry stored while degraded: until degradedTtl after it was stored')
  t.equal(freshness.trusts(now + 2000, now + 7000), false)

  freshness.degrade(now + 10_000)
  t.equal(freshness.trusts(now - 1, now + 5000), false, 'degrading again keeps the first moment')

  freshness.restore()
  t.equal(freshness.degraded, false)
  t.equal(freshness.lifetime(30_000), 30_000)
  t.equal(freshness.trusts(now - 3_600_000, now + 60_000), true)

  freshness.degrade(now + 60_000)
  t.equal(freshness.trusts(now, now + 64_999), true, 'a new degradation starts a new bound')
  t.equal(freshness.trusts(now, now + 65_000), false)
})

t.test('CacheFreshness with a degraded lifetime of 0 trusts nothing while degraded', async (t) => {
  const freshness = new CacheFreshness(0)
  const now = Date.now()
  t.equal(freshness.trusts(now - 1000, now), true)
  freshness.degrade(now)
  t.equal(freshness.lifetime(30_000), 0)
  t.equal(freshness.trusts(now, now), false)
})

t.test('TokenCache while degraded', async (t) => {
  t.test('an entry stored before the degradation is dropped once CACHE_DEGRADED_TTL has passed since it', async (t) => {
    const freshness = new CacheFreshness(5)
    const { cache } = caches({ freshness, ttl: 60 })
    const old = record()
    const recent = record()
    cache.set(digest('old'), old, Date.now() - 30_000)
    cache.set(digest('recent'), recent, Date.now() - 30_000)

    // Degraded 6 s ago: the 5 s bound has passed for everything stored before then.
    freshness.degrade(Date.now() - 6000)
    t.equal(cache.get(digest('old')), undefined, 'a miss: the database is asked again')
    t.equal(cache.size, 1, 'and the entry is gone')
    freshness.restore()
    t.equal(cache.get(digest('old')), undefined, 'it does not come back when the channel does')

    // Degraded just now: still within the bound.
    freshness.degrade()
    t.equal(cache.get(digest('recent')), recent, 'trusted within the bound')
  })

  t.test('in real time: trusted right after the degradation, not after the bound', async (t) => {
    const freshness = new CacheFreshness(0.5)
    const { cache } = caches({ freshness, ttl: 60 })
    const entry = record()
    cache.set(digest(1), entry)
    const degradedAt = Date.now()
    freshness.degrade(degradedAt)
    t.equal(cache.get(digest(1)), entry)
    await until(() => cache.get(digest(1)) === undefined, 5000, 'the entry to be dropped')
    t.ok(Date.now() - degradedAt >= 495, 'not before the bound')
  })

  t.test('entries stored while degraded get at most the short lifetime, even after the channel is back', async (t) => {
    const freshness = new CacheFreshness(0.5)
    const { cache } = caches({ freshness, ttl: 60, negativeTtl: 60 })
    freshness.degrade()
    const entry = record()
    const storedAt = Date.now()
    cache.set(digest(1), entry)
    cache.setUnknown(digest(2))
    freshness.restore()
    t.equal(cache.get(digest(1)), entry)
    t.equal(cache.get(digest(2)), null)
    await until(() => cache.get(digest(1)) === undefined && cache.get(digest(2)) === undefined, 5000, 'both entries to expire')
    t.ok(Date.now() - storedAt >= 495, 'they lived the short lifetime, not CACHE_TTL')
  })

  t.test('a token expiring sooner than the short lifetime still expires with the token', async (t) => {
    const freshness = new CacheFreshness(60)
    const { cache } = caches({ freshness, ttl: 60 })
    freshness.degrade()
    const now = Date.now()
    cache.set(digest(1), record({ expiresAt: now + 100 }), now)
    cache.set(digest(2), record({ expiresAt: now - 1 }), now)
    t.equal(cache.size, 1, 'an expired token is not stored at all')
    await until(() => cache.get(digest(1)) === undefined, 5000, 'the expiring token to go')
    t.ok(Date.now() - now >= 95, 'not before the token expired')
  })

  t.test('with CACHE_DEGRADED_TTL=0 nothing is stored while degraded, so nothing outlives the degradation', async (t) => {
    const freshness = new CacheFreshness(0)
    const { cache } = caches({ freshness, ttl: 0.2, negativeTtl: 0.2 })
    freshness.degrade()
    cache.set(digest(1), record())
    cache.setUnknown(digest(2))
    t.equal(cache.get(digest(1)), undefined, 'nothing is trusted while degraded')
    t.equal(cache.get(digest(2)), undefined)
    cache.setUnknown(digest(3))
    // The listener's first successful connection restores without clearing (there was nothing to miss yet).
    freshness.restore()
    await sleep(300)
    t.equal(cache.get(digest(3)), undefined, 'a negative entry stored while degraded is gone after CACHE_NEGATIVE_TTL at the latest')
  })
})

t.test('ClientAuthenticator and CacheFreshness', async (t) => {
  t.test('a credential verified before the degradation is verified again once the short bound has passed', async (t) => {
    const freshness = new CacheFreshness(0.5)
    const { clients, applications } = caches({ freshness, clientTtl: 60 })
    const app = await applications.add()
    await clients.authenticate(app.clientId, app.secret)
    const degradedAt = Date.now()
    freshness.degrade(degradedAt)
    await clients.authenticate(app.clientId, app.secret)
    t.equal(applications.lookups, 1, 'within the bound: remembered')
    await sleep(degradedAt + 550 - Date.now())
    t.ok(await clients.authenticate(app.clientId, app.secret))
    t.equal(applications.lookups, 2, 'past the bound: verified again')
  })

  t.test('a credential verified while degraded lives the short lifetime only', async (t) => {
    const freshness = new CacheFreshness(0.2)
    const { clients, applications } = caches({ freshness, clientTtl: 60 })
    const app = await applications.add()
    freshness.degrade()
    await clients.authenticate(app.clientId, app.secret)
    freshness.restore()
    await sleep(300)
    await clients.authenticate(app.clientId, app.secret)
    t.equal(applications.lookups, 2)
  })

  t.test('with CACHE_DEGRADED_TTL=0 a credential verified while degraded does not outlive CLIENT_CREDENTIAL_CACHE_TTL', async (t) => {
    const freshness = new CacheFreshness(0)
    const { clients, applications } = caches({ freshness, clientTtl: 0.2 })
    const app = await applications.add()
    freshness.degrade()
    t.ok(await clients.authenticate(app.clientId, app.secret))
    // The listener's first successful connection restores without clearing.
    freshness.restore()
    await sleep(300)
    t.ok(await clients.authenticate(app.clientId, app.secret))
    t.equal(applications.lookups, 2, 'verified again after the credential cache lifetime')
  })
})

t.test('ClientAuthenticator: a verification that straddles an invalidation is not cached', async (t) => {
  t.test('one caller: the answer is returned but not remembered', async (t) => {
    const { clients, applications } = caches()
    const app = await applications.add('old-secret-value')
    const gate = deferred()
    applications.gate = gate.promise
    const pending = clients.authenticate(app.clientId, 'old-secret-value')
    await until(() => applications.lookups === 1, 5000, 'the lookup to start')
    // The secret is rotated (on this instance or another) while the old row is being verified.
    await applications.rotate(app.clientId, 'new-secret-value')
    clients.invalidateApplication(app.id)
    applications.gate = null
    gate.resolve()
    t.ok(await pending, 'the verification in flight answers from what it read')
    t.equal(clients.size, 0, 'but its success is not remembered')
    t.equal(await clients.authenticate(app.clientId, 'old-secret-value'), null, 'the next request sees the rotation')
  })

  t.test('clear() during a verification has the same effect', async (t) => {
    const { clients, applications } = caches()
    const app = await applications.add()
    const gate = deferred()
    applications.gate = gate.promise
    const pending = clients.authenticate(app.clientId, app.secret)
    await until(() => applications.lookups === 1, 5000, 'the lookup to start')
    clients.clear()
    applications.gate = null
    gate.resolve()
    t.ok(await pending)
    t.equal(clients.size, 0)
  })

  t.test('a caller arriving after the invalidation does not reuse (and remember) the verification begun before it', async (t) => {
    const { clients, applications } = caches()
    const app = await applications.add('old-secret-value')
    const gate = deferred()
    applications.gate = gate.promise
    const first = clients.authenticate(app.clientId, 'old-secret-value')
    await until(() => applications.lookups === 1, 5000, 'the lookup to start')
    await applications.rotate(app.clientId, 'new-secret-value')
    clients.invalidateApplication(app.id)
    // Same credentials, sent after the rotation was applied here.
    const second = clients.authenticate(app.clientId, 'old-secret-value')
    applications.gate = null
    gate.resolve()
    await first
    await second
    t.equal(clients.size, 0, 'nothing verified against the old row is remembered')
    t.equal(await clients.authenticate(app.clientId, 'old-secret-value'), null, 'the old secret is refused from now on')
  })
})

t.test('ClientAuthenticator.clear forgets every verified credential', async (t) => {
  const { clients, applications } = caches()
  const first = await applications.add()
  const second = await applications.add()
  await clients.authenticate(first.clientId, first.secret)
  await clients.authenticate(second.clientId, second.secret)
  t.equal(clients.size, 2)
  clients.clear()
  t.equal(clients.size, 0)
  await clients.authenticate(first.clientId, first.secret)
  await clients.authenticate(second.clientId, second.secret)
  t.equal(applications.lookups, 4, 'both are verified again')
  t.equal(clients.size, 2)
})

// ---------------------------------------------------------------------------------------------
// InvalidationListener's state machine, with a scripted stand-in for its own pg.Client
// ---------------------------------------------------------------------------------------------

interface Script {
  connect?: () => Promise<void>
  listen?: () => Promise<void>
  ping?: () => Promise<void>
}

/** A stand-in for one `pg.Client`: the listener's own dependency, scripted per connection attempt. */
class FakeClient extends EventEmitter implements ListenerClient {
  readonly queries: Array<{ text: string, query_timeout?: number }> = []
  ended = false
  connected = false

  constructor (readonly script: Script) {
    super()
  }

  async connect (): Promise<void> {
    await this.script.connect?.()
    this.connected = true
  }

  async query (config: { text: string, query_timeout?: number }): Promise<unknown> {
    this.queries.push(config)
    if (config.text.startsWith('listen')) await this.script.listen?.()
    else await this.script.ping?.()
    return { rows: [] }
  }

  async end (): Promise<void> {
    if (this.ended) return
    this.ended = true
    // pg emits 'end' once the socket is closed.
    setImmediate(() => this.emit('end'))
  }

  /** A NOTIFY arriving on this connection. */
  notify (payload: string | undefined, channel = INVALIDATION_CHANNEL): void {
    this.emit('notification', { channel, ...(payload !== undefined ? { payload } : {}) })
  }

  pings (): number {
    return this.queries.filter((query) => query.text === 'select 1').length
  }
}

const failing = async (): Promise<void> => { throw new Error('ECONNREFUSED') }

function listenerFixture (t: Test, scriptFor: (attempt: number) => Script = () => ({}), options: { pingInterval?: number, backoff?: { min: number, max: number } } = {}): {
  listener: InvalidationListener
  clients: FakeClient[]
  attempts: number[]
  states: Array<{ state: ListenerState, error?: unknown }>
  cache: TokenCache
  authenticator: ClientAuthenticator
  applications: Applications
  freshness: CacheFreshness
  invalidation: CacheInvalidation
} {
  const { cache, clients: authenticator, applications, freshness } = caches()
  const invalidation = new CacheInvalidation({ cache, clients: authenticator })
  const clients: FakeClient[] = []
  const attempts: number[] = []
  const states: Array<{ state: ListenerState, error?: unknown }> = []
  const listener = new InvalidationListener({
    createClient () {
      const client = new FakeClient(scriptFor(clients.length))
      clients.push(client)
      attempts.push(Date.now())
      return client
    },
    invalidation,
    freshness,
    pingInterval: options.pingInterval ?? 20,
    timeout: 150,
    backoff: options.backoff ?? { min: 10, max: 40 },
    onStateChange (state, error) { states.push({ state, error }) }
  })
  t.teardown(async () => { await listener.stop() })
  return { listener, clients, attempts, states, cache, authenticator, applications, freshness, invalidation }
}

t.test('InvalidationListener', async (t) => {
  t.test('degrades the caches until the first LISTEN succeeds, then listens with full lifetimes', async (t) => {
    const gate = deferred()
    const { listener, clients, states, freshness, cache } = listenerFixture(t, () => ({ connect: async () => { await gate.promise } }))
    t.equal(listener.state, 'connecting')
    t.equal(freshness.degraded, true, 'degraded from construction: nothing listens yet')
    const entry = record()
    cache.set(digest(1), entry)
    const started = listener.start()
    gate.resolve()
    await started
    t.equal(listener.state, 'listening', 'start() resolves once listening')
    t.equal(freshness.degraded, false)
    t.equal(listener.connections, 1)
    t.strictSame(states.map((change) => change.state), ['listening'])
    t.equal(clients.length, 1)
    t.strictSame(clients[0]?.queries[0], { text: `listen ${INVALIDATION_CHANNEL}`, query_timeout: 150 })
    t.equal(cache.get(digest(1)), entry, 'the first connection does not clear the caches')
  })

  t.test('applies notifications on its channel, and nothing else', async (t) => {
    const { listener, clients, cache, invalidation } = listenerFixture(t)
    await listener.start()
    const entry = record()
    cache.set(digest(1), entry)
    const client = clients[0]!
    const payload = encode(randomUUID(), { kind: 'tokens', ids: [entry.id] })[0]
    client.notify(payload, 'some_other_channel')
    client.notify(undefined)
    client.notify('not a message')
    t.equal(cache.get(digest(1)), entry)
    client.notify(payload)
    t.equal(cache.get(digest(1)), undefined)
    t.equal(invalidation.stats.received, 1)
  })

  t.test('probes the connection every pingInterval with the timeout', async (t) => {
    const { listener, clients } = listenerFixture(t)
    await listener.start()
    await until(() => (clients[0]?.pings() ?? 0) >= 3, 5000, 'three pings')
    t.ok(clients[0]?.queries.slice(1).every((query) => query.text === 'select 1' && query.query_timeout === 150))
    t.equal(clients.length, 1, 'successful pings keep the connection')
    t.equal(listener.state, 'listening')
  })

  t.test('an error event: reconnecting and degraded, then a new connection after the backoff, and the caches cleared', async (t) => {
    const { listener, clients, attempts, states, cache, authenticator, applications, freshness } = listenerFixture(t, () => ({}), { backoff: { min: 50, max: 200 } })
    await listener.start()
    const app = await applications.add()
    await authenticator.authenticate(app.clientId, app.secret)
    cache.set(digest(1), record())
    t.equal(cache.size, 1)
    t.equal(authenticator.size, 1)

    const first = clients[0]!
    const lostAt = Date.now()
    const failure = new Error('terminating connection due to administrator command')
    first.emit('error', failure)
    t.equal(listener.state, 'reconnecting', 'at once')
    t.equal(freshness.degraded, true, 'lifetimes shortened at once')
    t.strictSame(states.at(-1), { state: 'reconnecting', error: failure }, 'the error is reported with the state')
    t.equal(first.ended, true, 'the broken client is closed')
    t.equal(cache.size, 1, 'entries are kept (with the short bound) while reconnecting')

    await until(() => listener.state === 'listening', 5000, 'the listener to reconnect')
    t.ok((attempts[1] ?? 0) - lostAt >= 45, 'not before the backoff delay')
    t.equal(clients.length, 2)
    t.equal(listener.connections, 2)
    t.equal(freshness.degraded, false, 'full lifetimes again')
    t.equal(cache.size, 0, 'the token cache was cleared: messages may have been missed')
    t.equal(authenticator.size, 0, 'and so were the verified credentials')
    t.strictSame(states.map((change) => change.state), ['listening', 'reconnecting', 'listening'])

    first.emit('error', new Error('late noise from the old connection'))
    first.emit('end')
    t.equal(listener.state, 'listening', 'events of a replaced connection are ignored')
    await sleep(100)
    t.equal(clients.length, 2, 'and start nothing')
  })

  t.test('the connection ending (server closed it) is a loss too', async (t) => {
    const { listener, clients, freshness } = listenerFixture(t)
    await listener.start()
    clients[0]!.emit('end')
    t.equal(listener.state, 'reconnecting')
    t.equal(freshness.degraded, true)
    await until(() => listener.state === 'listening' && clients.length === 2, 5000, 'a new connection')
    t.equal(freshness.degraded, false)
  })

  t.test('a failing ping: reconnect', async (t) => {
    let pingsFail = false
    const { listener, clients, freshness, cache } = listenerFixture(t, (attempt) => attempt === 0
      ? { ping: async () => { if (pingsFail) throw new Error('Query read timeout') } }
      : {})
    await listener.start()
    await until(() => clients[0]!.pings() >= 1, 5000, 'a first ping')
    cache.set(digest(1), record())
    pingsFail = true
    await until(() => listener.state === 'reconnecting', 5000, 'the failed ping to be noticed')
    t.equal(freshness.degraded, true)
    t.equal(clients[0]!.ended, true, 'the silent connection is closed')
    await until(() => listener.state === 'listening', 5000, 'the listener to reconnect')
    t.equal(clients.length, 2)
    t.equal(cache.size, 0)
  })

  t.test('a failing LISTEN is a failed attempt', async (t) => {
    const { listener, clients } = listenerFixture(t, (attempt) => attempt === 0 ? { listen: failing } : {})
    await listener.start()
    t.equal(listener.state, 'reconnecting', 'start() resolves after the first failed attempt')
    await until(() => listener.state === 'listening', 5000, 'the second attempt')
    t.equal(clients.length, 2)
    t.equal(clients[0]!.ended, true)
    t.equal(listener.connections, 1)
  })

  t.test('failed attempts are retried with a doubling delay, up to the maximum', async (t) => {
    const { listener, clients, attempts, freshness, states } = listenerFixture(t, (attempt) => attempt < 5 ? { connect: failing } : {}, { backoff: { min: 20, max: 80 } })
    await listener.start()
    t.equal(listener.state, 'reconnecting')
    t.equal(freshness.degraded, true)
    await until(() => listener.state === 'listening', 10_000, 'the sixth attempt')
    t.equal(clients.length, 6)
    const gaps = attempts.slice(1).map((at, n) => at - (attempts[n] ?? 0))
    // Lower bounds only (timers never fire early by more than a millisecond or so): 20, 40, 80, 80, 80.
    for (const [n, minimum] of [20, 40, 80, 80, 80].entries()) t.ok((gaps[n] ?? 0) >= minimum - 2, `attempt ${n + 2} waited ${gaps[n]} ms (at least ${minimum})`)
    t.equal(listener.connections, 1, 'the first successful connection')
    t.equal(freshness.degraded, false)
    t.equal(states.filter((change) => change.state === 'reconnecting').length, 1, 'one state change, not one per attempt')
  })

  t.test('stop() stops retrying', async (t) => {
    const { listener, clients, states } = listenerFixture(t, () => ({ connect: failing }), { backoff: { min: 10, max: 10 } })
    await listener.start()
    await until(() => clients.length >= 3, 5000, 'a few attempts')
    await listener.stop()
    t.equal(listener.state, 'stopped')
    t.equal(states.at(-1)?.state, 'stopped')
    const attemptsAtStop = clients.length
    await sleep(150)
    t.equal(clients.length, attemptsAtStop, 'no further attempt')
  })

  t.test('stop() while listening closes the connection and stops probing', async (t) => {
    const { listener, clients } = listenerFixture(t)
    await listener.start()
    await listener.stop()
    t.equal(listener.state, 'stopped')
    t.equal(clients[0]!.ended, true)
    const pings = clients[0]!.pings()
    clients[0]!.emit('error', new Error('after stop'))
    await sleep(100)
    t.equal(clients[0]!.pings(), pings, 'no more pings')
    t.equal(clients.length, 1, 'no reconnection')
    t.equal(listener.state, 'stopped')
  })

  t.test('stop() during a connection attempt: the attempt does not resurrect the listener', async (t) => {
    const gate = deferred()
    const { listener, clients } = listenerFixture(t, () => ({ connect: async () => { await gate.promise } }))
    const started = listener.start()
    await until(() => clients.length === 1, 5000, 'the attempt')
    await listener.stop()
    gate.resolve()
    await started
    t.equal(listener.state, 'stopped')
    t.equal(listener.connections, 0)
    await sleep(50)
    t.equal(clients.length, 1)
  })
})

// ---------------------------------------------------------------------------------------------
// The listener with a real pg.Client.
// ---------------------------------------------------------------------------------------------

// With DATABASE_URL (a PostgreSQL server) a message published through pg_notify on one
// connection reaches the listener on another, and pg_terminate_backend kills the listening
// connection for real. The embedded PGlite runs no NOTIFY across its socket connections and
// admits one connection (the listener's here): there the listener is checked against a real
// server going away instead.
const serverUrl = process.env.DATABASE_URL ?? ''

if (serverUrl !== '') {
  t.test('a real listener on PostgreSQL: receives, reconnects after its connection is killed, receives again', async (t) => {
    const db = await createTestDatabase()
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    const { cache, clients: authenticator, freshness } = caches()
    const receiver = new CacheInvalidation({ cache, clients: authenticator })
    const sender = new CacheInvalidation({
      ...caches(),
      notify: async (payload) => { await pool.query('select pg_notify($1, $2)', [INVALIDATION_CHANNEL, payload]) }
    })
    const states: ListenerState[] = []
    const listener = new InvalidationListener({
      createClient: () => new pg.Client({ connectionString: db.url, application_name: 'tessera-listener', connectionTimeoutMillis: 2000 }),
      invalidation: receiver,
      freshness,
      pingInterval: 5000,
      timeout: 2000,
      backoff: { min: 100, max: 1000 },
      onStateChange (state) { states.push(state) }
    })
    t.teardown(async () => {
      await listener.stop()
      await pool.end()
      await db.close()
    })
    await listener.start()
    t.equal(listener.state, 'listening')
    t.equal(freshness.degraded, false)

    const entry = record()
    cache.set(digest(1), entry)
    await sender.tokens([entry.id])
    await until(() => cache.get(digest(1)) === undefined, 2000, 'the NOTIFY to arrive')
    t.equal(receiver.stats.received, 1)

    const many = Array.from({ length: 400 }, () => record())
    many.forEach((item, n) => { cache.set(digest(`many-${n}`), item) })
    await sender.tokens(many.map((item) => item.id))
    await until(() => cache.size === 0, 2000, 'all three payloads')
    t.equal(receiver.stats.received, 4)

    const killed = await pool.query<{ killed: boolean }>(
      "select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = 'tessera-listener' and datname = current_database()")
    t.strictSame(killed.rows, [{ killed: true }], 'exactly one listening connection, now terminated')
    await until(() => states.includes('reconnecting'), 5000, 'the loss to be noticed')
    cache.set(digest(2), record())
    await until(() => listener.state === 'listening', 5000, 'the listener to reconnect')
    t.strictSame(states, ['listening', 'reconnecting', 'listening'])
    t.equal(listener.connections, 2)
    t.equal(freshness.degraded, false)
    t.equal(cache.get(digest(2)), undefined, 'the caches were cleared on reconnect')

    const after = record()
    cache.set(digest(3), after)
    await sender.user(after.userId ?? '')
    await until(() => cache.get(digest(3)) === undefined, 2000, 'a NOTIFY after the reconnection')
  })
} else {
  t.test('a real listener on the embedded database: listening, then reconnecting once the server is gone', async (t) => {
    const db = await createTestDatabase()
    const { freshness, cache, clients: authenticator } = caches()
    const listener = new InvalidationListener({
      createClient: () => new pg.Client({ connectionString: db.url, application_name: 'tessera-listener', connectionTimeoutMillis: 2000 }),
      invalidation: new CacheInvalidation({ cache, clients: authenticator }),
      freshness,
      pingInterval: 5000,
      timeout: 2000,
      backoff: { min: 50, max: 200 },
      onStateChange () {}
    })
    t.teardown(async () => { await listener.stop() })
    await listener.start()
    t.equal(listener.state, 'listening', 'LISTEN is accepted')
    t.equal(freshness.degraded, false)
    await db.close()
    await until(() => listener.state === 'reconnecting', 5000, 'the loss to be noticed')
    t.equal(freshness.degraded, true)
    await sleep(300)
    t.equal(listener.state, 'reconnecting', 'attempts keep failing while the server is gone')
    t.equal(listener.connections, 1)
  })
}
