import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { TokenCache, type TokenCacheOptions } from '../../src/services/token-cache.js'
import type { TokenRecord } from '../../src/services/token-resolver.js'

const OPTIONS: TokenCacheOptions = { maxEntries: 100, maxBytes: 0, ttl: 30, negativeTtl: 5 }

let sequence = 0
function record (overrides: Partial<TokenRecord> = {}): TokenRecord {
  sequence++
  return {
    id: `token-${sequence}`,
    scopes: ['read:tokens'],
    effectiveScope: 'read:tokens',
    audience: null,
    userId: 'user-1',
    username: 'alice',
    applicationId: 'app-1',
    clientId: 'internal',
    createdAt: 1_700_000_000,
    expiresAt: null,
    revoked: false,
    ownerActive: true,
    introspectionPolicy: null,
    ...overrides
  }
}

/** A 64-character hex digest, distinct per label. */
function digest (label: string | number): string {
  return String(label).padStart(64, '0')
}

t.test('a stored record is returned by digest and counted as a hit; an absent one as a miss', async (t) => {
  const cache = new TokenCache(OPTIONS)
  const stored = record()
  t.equal(cache.enabled, true)
  t.equal(cache.get(digest(1)), undefined)
  cache.set(digest(1), stored)
  t.equal(cache.get(digest(1)), stored)
  t.equal(cache.get(digest(1)), stored)
  t.equal(cache.get(digest(2)), undefined)
  t.strictSame(cache.stats, { hits: 2, misses: 2, evictions: 0 })
  t.equal(cache.size, 1)
})

t.test('the cache holds at most maxEntries records, dropping the least recently used', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, maxEntries: 3 })
  for (const n of [1, 2, 3]) cache.set(digest(n), record())
  t.ok(cache.get(digest(1)), 'touching 1 makes 2 the least recently used')
  cache.set(digest(4), record())
  cache.set(digest(5), record())
  t.equal(cache.size, 3)
  t.equal(cache.get(digest(2)), undefined)
  t.equal(cache.get(digest(3)), undefined)
  t.ok(cache.get(digest(1)))
  t.ok(cache.get(digest(4)))
  t.ok(cache.get(digest(5)))
  t.equal(cache.stats.evictions, 2)
})

t.test('the cache holds at most maxBytes of records', async (t) => {
  // Each record is estimated at well over 500 bytes (digest, name, scopes, bookkeeping).
  const cache = new TokenCache({ ...OPTIONS, maxEntries: 1000, maxBytes: 2000 })
  for (let n = 0; n < 20; n++) cache.set(digest(n), record())
  t.ok(cache.size >= 1 && cache.size <= 3, `holds ${cache.size} records`)
  t.equal(cache.stats.evictions, 20 - cache.size)
  t.ok(cache.get(digest(19)), 'the newest record stays')
  t.equal(cache.get(digest(0)), undefined, 'the oldest record went')
})

t.test('a record bigger than maxBytes is not cached at all', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, maxBytes: 2000 })
  const huge = record({ audience: Array.from({ length: 20 }, (_, i) => `https://resource-${i}.example.com/api`) })
  cache.set(digest(1), huge)
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.size, 0)
})

t.test('a record is not trusted beyond the cache TTL', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, ttl: 0.05 })
  cache.set(digest(1), record())
  t.ok(cache.get(digest(1)))
  await sleep(70)
  t.equal(cache.get(digest(1)), undefined)
})

t.test('a cached record never outlives its token: it is gone once the token expires', async (t) => {
  const cache = new TokenCache(OPTIONS)
  const stored = record({ expiresAt: Date.now() + 50 })
  cache.set(digest(1), stored)
  t.equal(cache.get(digest(1)), stored)
  await sleep(60)
  t.equal(cache.get(digest(1)), undefined)
})

t.test('a record that has already expired is not cached', async (t) => {
  const cache = new TokenCache(OPTIONS)
  const now = Date.now()
  cache.set(digest(1), record({ expiresAt: now - 1 }), now)
  cache.set(digest(2), record({ expiresAt: now }), now)
  t.equal(cache.size, 0)
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.get(digest(2)), undefined)
})

t.test('an unknown digest is remembered as unknown (null) for the negative TTL', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, negativeTtl: 0.05 })
  cache.setUnknown(digest(1))
  t.equal(cache.get(digest(1)), null)
  t.strictSame(cache.stats, { hits: 1, misses: 0, evictions: 0 })
  await sleep(70)
  t.equal(cache.get(digest(1)), undefined)
})

t.test('a negative TTL of 0 switches negative entries off', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, negativeTtl: 0 })
  cache.setUnknown(digest(1))
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.size, 0)
})

t.test('forget drops a negative entry, so a newly issued token is found', async (t) => {
  const cache = new TokenCache(OPTIONS)
  cache.setUnknown(digest(1))
  cache.forget(digest(1))
  t.equal(cache.get(digest(1)), undefined)
  cache.set(digest(2), record())
  cache.forget(digest(2))
  t.equal(cache.get(digest(2)), undefined)
})

t.test('invalidateToken drops that token only', async (t) => {
  const cache = new TokenCache(OPTIONS)
  const target = record()
  const other = record()
  cache.set(digest(1), target)
  cache.set(digest(2), other)
  cache.setUnknown(digest(3))
  t.equal(cache.invalidateToken(target.id), 1)
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.get(digest(2)), other)
  t.equal(cache.get(digest(3)), null, 'negative entries are untouched')
  t.equal(cache.invalidateToken('no-such-token'), 0)
})

t.test('invalidateUser drops every token of that user, and no other', async (t) => {
  const cache = new TokenCache(OPTIONS)
  for (let n = 0; n < 10; n++) cache.set(digest(n), record({ userId: n % 2 === 0 ? 'user-even' : 'user-odd' }))
  cache.set(digest(10), record({ userId: null, username: null }))
  t.equal(cache.invalidateUser('user-even'), 5)
  t.equal(cache.size, 6)
  for (let n = 0; n < 10; n++) {
    t.equal(cache.get(digest(n)) === undefined, n % 2 === 0, `token ${n}`)
  }
  t.ok(cache.get(digest(10)), 'an application token has no owner to match')
})

t.test('invalidateApplication drops every token of that application', async (t) => {
  const cache = new TokenCache(OPTIONS)
  cache.set(digest(1), record({ applicationId: 'app-a' }))
  cache.set(digest(2), record({ applicationId: 'app-a', userId: null }))
  cache.set(digest(3), record({ applicationId: 'app-b' }))
  t.equal(cache.invalidateApplication('app-a'), 2)
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.get(digest(2)), undefined)
  t.ok(cache.get(digest(3)))
})

t.test('clear empties the cache', async (t) => {
  const cache = new TokenCache(OPTIONS)
  cache.set(digest(1), record())
  cache.setUnknown(digest(2))
  cache.clear()
  t.equal(cache.size, 0)
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.get(digest(2)), undefined)
})

t.test('every invalidation changes the generation, even one that matched nothing', async (t) => {
  const cache = new TokenCache(OPTIONS)
  const start = cache.generation
  cache.set(digest(1), record())
  cache.setUnknown(digest(2))
  cache.get(digest(1))
  t.equal(cache.generation, start, 'reads and writes leave it alone')
  t.equal(cache.invalidateToken('no-such-token'), 0)
  t.not(cache.generation, start)
  const seen = new Set([start, cache.generation])
  cache.invalidateUser('nobody')
  seen.add(cache.generation)
  cache.invalidateApplication('none')
  seen.add(cache.generation)
  cache.forget(digest(3))
  seen.add(cache.generation)
  cache.clear()
  seen.add(cache.generation)
  t.equal(seen.size, 6, 'each one gave a new generation')
})

t.test('maxEntries 0 disables the cache: nothing is stored, every read is a miss', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, maxEntries: 0 })
  t.equal(cache.enabled, false)
  const stored = record()
  cache.set(digest(1), stored)
  cache.setUnknown(digest(2))
  t.equal(cache.get(digest(1)), undefined)
  t.equal(cache.get(digest(2)), undefined)
  t.equal(cache.size, 0)
  t.equal(cache.invalidateToken(stored.id), 0)
  t.equal(cache.invalidateUser('user-1'), 0)
  t.strictSame(cache.stats, { hits: 0, misses: 2, evictions: 0 })
  cache.forget(digest(1))
  cache.clear()
  t.equal(cache.size, 0)
})

t.test('a TTL of 0 disables the cache as well', async (t) => {
  const cache = new TokenCache({ ...OPTIONS, ttl: 0 })
  t.equal(cache.enabled, false)
  cache.set(digest(1), record())
  t.equal(cache.get(digest(1)), undefined)
})
