import t from 'tap'
import { ClientAuthenticator, type ClientLookup, type ClientRow } from '../../src/services/client-auth.js'
import { PasswordHasher } from '../../src/services/passwords.js'
import { build, seedApplication, TEST_ENV } from '../helper.js'

/** The real argon2id, counting how often it runs (a verification against no hash runs none). */
class CountingHasher extends PasswordHasher {
  verifications = 0

  override async verify (hash: string | null | undefined, secret: string): Promise<boolean> {
    if (hash != null && hash !== '') this.verifications++
    return await super.verify(hash, secret)
  }
}

const app = await build(t)
const connection = app.orm.em.getConnection()

/** The same query the server runs, against this file's database, counting its calls. */
function databaseLookup (): ClientLookup & { calls: number } {
  const lookup = Object.assign(async (clientId: string): Promise<ClientRow | null> => {
    lookup.calls++
    return await app.services.store.client(clientId)
  }, { calls: 0 })
  return lookup
}

function authenticator (ttlSeconds = 60, failureTtlSeconds?: number): { clients: ClientAuthenticator, hasher: CountingHasher, lookup: ReturnType<typeof databaseLookup> } {
  const hasher = new CountingHasher({ memoryCost: Number(TEST_ENV.ARGON2_MEMORY_COST), timeCost: Number(TEST_ENV.ARGON2_TIME_COST) })
  const lookup = databaseLookup()
  return { clients: new ClientAuthenticator({ lookup, hasher, ttlSeconds, ...(failureTtlSeconds !== undefined ? { failureTtlSeconds } : {}) }), hasher, lookup }
}

t.test('the correct secret authenticates and yields the client record', async (t) => {
  const seeded = await seedApplication(app, ['introspect', 'read:repository'])
  const { clients } = authenticator()
  const client = await clients.authenticate(seeded.clientId, seeded.clientSecret)
  const [row] = await connection.execute<Array<{ name: string }>>('select name from applications where id = ?', [seeded.id])
  t.strictSame(client, {
    applicationId: seeded.id,
    clientId: seeded.clientId,
    name: row?.name,
    scopes: ['introspect', 'read:repository'],
    introspectionAudiences: null,
    introspectionScopes: null
  })
})

t.test('the client record carries the audiences the application may introspect', async (t) => {
  const limited = await seedApplication(app, ['introspect'], { introspectionAudiences: ['billing', 'search'] })
  const emptyList = await seedApplication(app, ['introspect'], { introspectionAudiences: [] })
  const { clients } = authenticator()
  t.strictSame((await clients.authenticate(limited.clientId, limited.clientSecret))?.introspectionAudiences, ['billing', 'search'])
  t.equal((await clients.authenticate(emptyList.clientId, emptyList.clientSecret))?.introspectionAudiences, null, 'an empty list means unrestricted')
})

t.test('a wrong secret does not authenticate', async (t) => {
  const seeded = await seedApplication(app)
  const { clients } = authenticator()
  t.equal(await clients.authenticate(seeded.clientId, `${seeded.clientSecret}x`), null)
  t.equal(await clients.authenticate(seeded.clientId, seeded.clientSecret.slice(0, -1)), null)
  t.equal(await clients.authenticate(seeded.clientId, ''), null)
})

t.test('another application\'s secret does not authenticate', async (t) => {
  const first = await seedApplication(app)
  const second = await seedApplication(app)
  const { clients } = authenticator()
  t.equal(await clients.authenticate(first.clientId, second.clientSecret), null)
})

t.test('an unknown client does not authenticate and runs no argon2 (each random client_id was a full argon2 run)', async (t) => {
  const { clients, hasher, lookup } = authenticator()
  t.equal(await clients.authenticate('no-such-client', 'whatever-secret'), null)
  t.equal(lookup.calls, 1)
  t.equal(hasher.verifications, 0, 'it waits as long as a verification instead (test/services/passwords.test.ts)')
})

t.test('an absurdly long client_id is refused without a database lookup', async (t) => {
  const { clients, hasher, lookup } = authenticator()
  t.equal(await clients.authenticate('x'.repeat(65), 'whatever-secret'), null)
  t.equal(lookup.calls, 0)
  t.equal(hasher.verifications, 0)
})

t.test('a public client (not confidential, no secret) cannot authenticate', async (t) => {
  const seeded = await seedApplication(app, ['introspect'], { confidential: false })
  t.equal(seeded.clientSecret, '', 'a public client has no secret')
  const { clients } = authenticator()
  t.equal(await clients.authenticate(seeded.clientId, ''), null)
  t.equal(await clients.authenticate(seeded.clientId, 'guessed-secret'), null)
})

t.test('a verified credential is remembered: the second call runs neither argon2 nor the query', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher, lookup } = authenticator()
  const first = await clients.authenticate(seeded.clientId, seeded.clientSecret)
  const second = await clients.authenticate(seeded.clientId, seeded.clientSecret)
  t.strictSame(second, first)
  t.equal(hasher.verifications, 1)
  t.equal(lookup.calls, 1)
})

t.test('a repeated wrong pair is answered without argon2 (each repeat was a full argon2 run)', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher, lookup } = authenticator()
  t.equal(await clients.authenticate(seeded.clientId, 'wrong'), null)
  t.equal(await clients.authenticate(seeded.clientId, 'wrong'), null)
  t.equal(hasher.verifications, 1)
  t.equal(lookup.calls, 1, 'nor a lookup')
  t.equal(await clients.authenticate(seeded.clientId, 'wrong too'), null)
  t.equal(hasher.verifications, 2, 'another wrong secret is another pair')
  t.ok(await clients.authenticate(seeded.clientId, seeded.clientSecret) !== null, 'the right secret still works afterwards')
})

t.test('with a failure lifetime of 0 failures are not remembered', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher } = authenticator(60, 0)
  await clients.authenticate(seeded.clientId, 'wrong')
  await clients.authenticate(seeded.clientId, 'wrong')
  t.equal(hasher.verifications, 2)
})

t.test('remembered failures are forgotten by an invalidation and by clear', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher } = authenticator()
  await clients.authenticate(seeded.clientId, 'wrong')
  clients.invalidateApplication(seeded.id)
  await clients.authenticate(seeded.clientId, 'wrong')
  t.equal(hasher.verifications, 2, 'verified again after the invalidation (a rotated secret)')
  clients.clear()
  await clients.authenticate(seeded.clientId, 'wrong')
  t.equal(hasher.verifications, 3, 'and after clear (the invalidation channel reconnected)')
})

t.test('beforeVerifying runs before anything is spent on an unverified pair, and what it throws is thrown', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher, lookup } = authenticator()
  let checks = 0
  const refuse = { beforeVerifying: async () => { checks++; throw new Error('over the limit') } }
  await t.rejects(clients.authenticate(seeded.clientId, seeded.clientSecret, refuse), { message: 'over the limit' })
  t.equal(hasher.verifications, 0)
  t.equal(lookup.calls, 0)
  await clients.authenticate(seeded.clientId, seeded.clientSecret)
  t.ok(await clients.authenticate(seeded.clientId, seeded.clientSecret, refuse) !== null, 'a pair verified recently costs nothing: not checked')
  t.equal(checks, 1)
})

t.test('concurrent identical first requests share one argon2 verification', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher, lookup } = authenticator()
  const results = await Promise.all(Array.from({ length: 8 }, async () => await clients.authenticate(seeded.clientId, seeded.clientSecret)))
  t.equal(hasher.verifications, 1)
  t.equal(lookup.calls, 1)
  t.equal(new Set(results).size, 1, 'every caller gets the same record')
  t.equal(results[0]?.clientId, seeded.clientId)
})

t.test('concurrent identical wrong guesses share one verification too, and are remembered', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher } = authenticator()
  const results = await Promise.all(Array.from({ length: 4 }, async () => await clients.authenticate(seeded.clientId, 'wrong')))
  t.strictSame(results, [null, null, null, null])
  t.equal(hasher.verifications, 1)
  await clients.authenticate(seeded.clientId, 'wrong')
  t.equal(hasher.verifications, 1)
})

t.test('invalidateApplication forgets that application\'s credentials, and only those', async (t) => {
  const first = await seedApplication(app)
  const second = await seedApplication(app)
  const { clients, hasher } = authenticator()
  await clients.authenticate(first.clientId, first.clientSecret)
  await clients.authenticate(second.clientId, second.clientSecret)
  t.equal(hasher.verifications, 2)

  clients.invalidateApplication(first.id)
  t.ok(await clients.authenticate(first.clientId, first.clientSecret) !== null)
  t.equal(hasher.verifications, 3, 'the invalidated application is verified again')
  t.ok(await clients.authenticate(second.clientId, second.clientSecret) !== null)
  t.equal(hasher.verifications, 3, 'the other application is still remembered')
})

t.test('invalidateApplication after the application is deleted makes its secret fail at once', async (t) => {
  const seeded = await seedApplication(app)
  const { clients } = authenticator()
  t.ok(await clients.authenticate(seeded.clientId, seeded.clientSecret) !== null)
  await connection.execute('delete from applications where id = ?', [seeded.id], 'run')
  clients.invalidateApplication(seeded.id)
  t.equal(await clients.authenticate(seeded.clientId, seeded.clientSecret), null)
})

t.test('with a cache lifetime of 0 nothing is remembered', async (t) => {
  const seeded = await seedApplication(app)
  const { clients, hasher } = authenticator(0)
  t.ok(await clients.authenticate(seeded.clientId, seeded.clientSecret) !== null)
  t.ok(await clients.authenticate(seeded.clientId, seeded.clientSecret) !== null)
  t.equal(hasher.verifications, 2)
  t.doesNotThrow(() => { clients.invalidateApplication(seeded.id) }, 'invalidating a disabled cache is harmless')
})

t.test('a secret hashed with other argon2 parameters is re-hashed with the current ones after a successful verification', async (t) => {
  const seeded = await seedApplication(app)
  const dearer = await new PasswordHasher({ memoryCost: 2048, timeCost: 2 }).hash(seeded.clientSecret)
  await connection.execute('update applications set client_secret_hash = ? where id = ?', [dearer, seeded.id], 'run')
  t.ok(await app.services.clients.authenticate(seeded.clientId, seeded.clientSecret) !== null)
  // Beside the request: wait for the UPDATE.
  let stored = dearer
  for (let i = 0; i < 100 && stored === dearer; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    const [row] = await connection.execute<Array<{ client_secret_hash: string }>>('select client_secret_hash from applications where id = ?', [seeded.id])
    stored = row?.client_secret_hash ?? dearer
  }
  t.not(stored, dearer, 'replaced')
  t.equal(app.services.hasher.needsRehash(stored), false, 'with the configured parameters')
  app.services.clients.clear()
  t.ok(await app.services.clients.authenticate(seeded.clientId, seeded.clientSecret) !== null, 'the same secret verifies against the new hash')
})

t.test('a re-hash never overwrites a secret rotated meanwhile', async (t) => {
  const seeded = await seedApplication(app)
  const dearer = await new PasswordHasher({ memoryCost: 2048, timeCost: 2 }).hash(seeded.clientSecret)
  await connection.execute('update applications set client_secret_hash = ? where id = ?', [dearer, seeded.id], 'run')
  const rotated = await app.services.hasher.hash('a rotated secret')
  const hasher = app.services.hasher
  const upgrade = hasher.upgrade
  let upgrading: Promise<string | null> | undefined
  // The rotation lands while the new hash is being made.
  hasher.upgrade = async function (...args: Parameters<typeof upgrade>) {
    upgrading = (async () => {
      await connection.execute('update applications set client_secret_hash = ? where id = ?', [rotated, seeded.id], 'run')
      return await upgrade.apply(hasher, args)
    })()
    return await upgrading
  }
  t.teardown(() => { hasher.upgrade = upgrade })
  t.ok(await app.services.clients.authenticate(seeded.clientId, seeded.clientSecret) !== null)
  t.type(await upgrading, 'string', 'a new hash was made (started before the answer)')
  // The UPDATE follows the new hash at once; it would have landed well within this.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const [row] = await connection.execute<Array<{ client_secret_hash: string }>>('select client_secret_hash from applications where id = ?', [seeded.id])
  t.equal(row?.client_secret_hash, rotated, 'the rotated secret stays')
})
