import t from 'tap'
import { generateKeyPairSync, sign } from 'node:crypto'
import { build } from '../helper.js'
import { SigningKey } from '../../src/entities/signing-key.js'
import { JWT_TYPES, SigningKeyStore, thumbprint } from '../../src/services/signing-keys.js'

const SECRET = 'a-signing-key-secret-of-32-characters-or-more'

interface StoredKey { kid: string, private_key: string, retired_at: Date | null }

async function storedKeys (app: Awaited<ReturnType<typeof build>>): Promise<StoredKey[]> {
  return await app.orm.em.getConnection().execute<StoredKey[]>('select kid, private_key, retired_at from signing_keys order by created_at')
}

function base64url (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

// One application per configuration, shared by the tests below in order (each build is seconds).
const plainApp = await build(t)
const sealedApp = await build(t, { SIGNING_KEY_SECRET: SECRET })

t.test('the first start creates one ES256 key; ensuring again (even concurrently) creates no other', async (t) => {
  const app = plainApp
  const { keys } = app.services
  const first = keys.activeKey()
  const again = await Promise.all([keys.ensureSigningKey(), keys.ensureSigningKey(), keys.ensureSigningKey()])
  t.strictSame(again.map((key) => key.kid), [first.kid, first.kid, first.kid])
  const rows = await storedKeys(app)
  t.equal(rows.length, 1)
  t.equal(rows[0]?.kid, first.kid)
  t.equal(first.kid, thumbprint(first.publicJwk), 'the kid is the RFC 7638 thumbprint of the public key')
  t.strictSame(keys.publishedKeys(), { keys: [{ kty: 'EC', crv: 'P-256', x: first.publicJwk.x, y: first.publicJwk.y, kid: first.kid, alg: 'ES256', use: 'sig' }] })
})

t.test('a second store on the same database (another replica) loads the same key instead of making one', async (t) => {
  const app = plainApp
  const replica = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: '', retiredKeyLifetime: 3600 })
  const loaded = await replica.ensureSigningKey()
  t.equal(loaded.kid, app.services.keys.activeKey().kid)
  t.equal((await storedKeys(app)).length, 1)
})

t.test('with SIGNING_KEY_SECRET the private key is stored encrypted, and only that secret opens it', async (t) => {
  const app = sealedApp
  const [row] = await storedKeys(app)
  t.ok(row?.private_key.startsWith('aes-256-gcm:'), 'sealed with AES-256-GCM')
  t.notMatch(row?.private_key ?? '', /PRIVATE KEY/, 'no PEM in clear')
  t.notMatch(Buffer.from((row?.private_key ?? '').split('.').at(-1) ?? '', 'base64url').toString('latin1'), /PRIVATE KEY/)

  const same = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: SECRET, retiredKeyLifetime: 3600 })
  await same.reload()
  t.equal(same.activeKey().kid, row?.kid)

  const wrong = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: 'another-secret-that-is-32-characters-long', retiredKeyLifetime: 3600 })
  await t.rejects(wrong.reload(), { code: 'TESSERA_SIGNING_KEY_UNREADABLE', message: /cannot be decrypted/ })
  const none = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: '', retiredKeyLifetime: 3600 })
  await t.rejects(none.reload(), { code: 'TESSERA_SIGNING_KEY_UNREADABLE', message: /neither SIGNING_KEY_SECRET nor TOKEN_HMAC_KEY/ })
})

t.test('without SIGNING_KEY_SECRET the key is sealed under TOKEN_HMAC_KEY; without either it is marked plain', async (t) => {
  const hmac = await build(t, { TOKEN_HMAC_KEY: 'an-hmac-key-of-at-least-32-characters!!' })
  t.match((await storedKeys(hmac))[0], { private_key: /^aes-256-gcm:/ })
  t.match((await storedKeys(plainApp))[0], { private_key: /^plain:-----BEGIN PRIVATE KEY-----/ })
})

t.test('a sealed key cannot be moved to another row: the kid is authenticated with it', async (t) => {
  const app = sealedApp
  const { keys } = app.services
  const old = keys.activeKey().kid
  await keys.rotateSigningKey()
  const current = keys.activeKey().kid
  const connection = app.orm.em.getConnection()
  // Put the retired key's ciphertext in the active row.
  await connection.execute('update signing_keys set private_key = (select private_key from signing_keys where kid = ?) where kid = ?', [old, current])
  await t.rejects(keys.reload(), { code: 'TESSERA_SIGNING_KEY_UNREADABLE' })
})

t.test('rotation: a new key signs, the previous one stays published for the longest token lifetime, then goes', async (t) => {
  const app = plainApp
  const keys = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: '', retiredKeyLifetime: 600 })
  const before = await keys.ensureSigningKey()
  const signedBefore = keys.sign(JWT_TYPES.accessToken, { sub: 'x', exp: Math.floor(Date.now() / 1000) + 3600 })

  const rotatedAt = new Date()
  const { active, retired } = await keys.rotateSigningKey(rotatedAt)
  t.not(active.kid, before.kid)
  t.strictSame(retired.map((key) => key.kid), [before.kid])
  t.equal(keys.activeKey().kid, active.kid)
  t.strictSame(keys.publishedKeys().keys.map((key) => key.kid), [active.kid, before.kid], 'the new key first, the old one still published')
  t.equal(keys.check(signedBefore, JWT_TYPES.accessToken), 'valid', 'a token signed before the rotation still verifies')
  const signedAfter = keys.sign(JWT_TYPES.accessToken, { sub: 'x' })
  t.equal(JSON.parse(Buffer.from(signedAfter.split('.')[0] ?? '', 'base64url').toString()).kid, active.kid)

  // The old key is published for the lifetime (600 s) plus one key refresh interval (60 s).
  const stillPublished = rotatedAt.getTime() + 659_000
  const gone = rotatedAt.getTime() + 661_000
  t.strictSame(keys.publishedKeys(stillPublished).keys.map((key) => key.kid), [active.kid, before.kid])
  t.strictSame(keys.publishedKeys(gone).keys.map((key) => key.kid), [active.kid])
  await keys.reload(gone)
  t.strictSame(keys.publishedKeys(gone).keys.map((key) => key.kid), [active.kid], 'and is not loaded any more')
  t.equal(await app.orm.em.fork().count(SigningKey, { retiredAt: null }), 1, 'one active key in the database')
})

t.test('check: only an unexpired ES256 JWS of the expected type by a published key is valid', async (t) => {
  const app = plainApp
  const { keys } = app.services
  const now = Math.floor(Date.now() / 1000)
  const good = keys.sign(JWT_TYPES.accessToken, { sub: 's', exp: now + 60 })
  t.equal(keys.check(good, JWT_TYPES.accessToken), 'valid')
  t.equal(keys.check(good, JWT_TYPES.introspection), 'invalid', 'another typ')
  t.equal(keys.check(keys.sign(JWT_TYPES.accessToken, { sub: 's', exp: now - 1 }), JWT_TYPES.accessToken), 'invalid', 'expired')
  t.equal(keys.check(keys.sign(JWT_TYPES.accessToken, { sub: 's', exp: 'soon' }), JWT_TYPES.accessToken), 'invalid', 'a non-numeric exp')

  const [header = '', payload = '', signature = ''] = good.split('.')
  const tampered = `${header}.${base64url({ sub: 'admin', exp: now + 60 })}.${signature}`
  t.equal(keys.check(tampered, JWT_TYPES.accessToken), 'invalid', 'a changed payload')
  t.equal(keys.check(`${base64url({ alg: 'none', typ: 'at+jwt', kid: keys.activeKey().kid })}.${payload}.`, JWT_TYPES.accessToken), 'invalid', 'alg none')
  t.equal(keys.check(`${base64url({ alg: 'HS256', typ: 'at+jwt', kid: keys.activeKey().kid })}.${payload}.${signature}`, JWT_TYPES.accessToken), 'invalid', 'another alg')

  // Signed by a stranger's key under our kid, and under its own kid.
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  for (const kid of [keys.activeKey().kid, thumbprint(stranger.publicKey.export({ format: 'jwk' }))]) {
    const input = `${base64url({ alg: 'ES256', typ: 'at+jwt', kid })}.${payload}`
    const forged = `${input}.${sign('sha256', Buffer.from(input), { key: stranger.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
    t.equal(keys.check(forged, JWT_TYPES.accessToken), kid === keys.activeKey().kid ? 'invalid' : 'unknown-key')
  }

  for (const garbage of ['', 'a.b', 'a.b.c.d', '..', 'tsr_abc', `${header}.${payload}`, `${header}..${signature}`, '!!.!!.!!', `${base64url('x')}.${payload}.${signature}`]) {
    t.equal(keys.check(garbage, JWT_TYPES.accessToken), 'invalid', `garbage ${JSON.stringify(garbage)}`)
  }
})

t.test('identify: an expired JWS of ours is still ours; a bad signature, another typ or a stranger\'s key is not (identification only)', async (t) => {
  const app = plainApp
  const { keys } = app.services
  const now = Math.floor(Date.now() / 1000)
  const expired = keys.sign(JWT_TYPES.accessToken, { sub: 's', exp: now - 3600 })
  t.equal(keys.check(expired, JWT_TYPES.accessToken), 'invalid', 'check refuses it')
  t.equal(keys.identify(expired, JWT_TYPES.accessToken), 'valid', 'identify recognises it')
  t.equal(keys.identify(expired, JWT_TYPES.introspection), 'invalid', 'another typ')
  const [header = '', , signature = ''] = expired.split('.')
  t.equal(keys.identify(`${header}.${base64url({ sub: 'admin', exp: now - 3600 })}.${signature}`, JWT_TYPES.accessToken), 'invalid', 'a changed payload')
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const input = `${base64url({ alg: 'ES256', typ: 'at+jwt', kid: thumbprint(stranger.publicKey.export({ format: 'jwk' })) })}.${base64url({ sub: 's' })}`
  t.equal(keys.identify(`${input}.${sign('sha256', Buffer.from(input), { key: stranger.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`, JWT_TYPES.accessToken), 'unknown-key')
  t.equal(keys.identify('tsr_abc', JWT_TYPES.accessToken), 'invalid')
  t.equal(keys.identify(keys.sign(JWT_TYPES.accessToken, { sub: 's', exp: 'soon' }), JWT_TYPES.accessToken), 'valid', 'the claims are not judged at all')
})

t.test('before any key is loaded, signing is a clear 503', async (t) => {
  const app = plainApp
  const empty = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: '', retiredKeyLifetime: 60 })
  t.throws(() => empty.activeKey(), { code: 'TESSERA_SIGNING_KEY_MISSING', statusCode: 503 })
  t.throws(() => empty.sign(JWT_TYPES.accessToken, {}), { code: 'TESSERA_SIGNING_KEY_MISSING' })
  t.strictSame(empty.publishedKeys(), { keys: [] })
})

t.test('a token naming an unknown key reloads the keys, at most once per few seconds', async (t) => {
  const app = plainApp
  const replica = new SigningKeyStore({ fork: () => app.orm.em.fork(), secret: '', retiredKeyLifetime: 3600 })
  await replica.reload()
  await app.services.keys.rotateSigningKey()
  const token = app.services.keys.sign(JWT_TYPES.accessToken, { sub: 's' })
  t.equal(replica.check(token, JWT_TYPES.accessToken), 'unknown-key')
  const now = Date.now()
  t.equal(await replica.reloadForUnknownKey(now), true)
  t.equal(replica.check(token, JWT_TYPES.accessToken), 'valid')
  t.equal(await replica.reloadForUnknownKey(now + 1000), false, 'throttled')
  t.equal(await replica.reloadForUnknownKey(now + 6000), true)
})
