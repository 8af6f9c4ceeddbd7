import { generateKeyPairSync, hash, sign, type KeyObject } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { AuditEvent } from '../../src/entities/audit-event.js'
import { generateToken } from '../../src/services/token-format.js'
import { startProxy } from '../proxy.js'
import { basic, buildWith, createTestDatabase, freePort, introspection, seedApplication, seedToken, seedUser } from '../helper.js'

/*
 * GitHub's secret-scanning partner endpoint, driven as GitHub drives it: reports signed with an
 * ECDSA P-256 key whose public half a real HTTP server publishes in GitHub's format.
 */

const URL_PATH = '/meta/public_keys/secret_scanning'

function keyPair (): { privateKey: KeyObject, pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

const github = keyPair()
const GITHUB_KEY_ID = 'bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c'
const keyDocument = (keys: Array<{ id: string, pem: string }>): string =>
  JSON.stringify({ public_keys: keys.map((key) => ({ key_identifier: key.id, key: key.pem, is_current: true })) })

// The key source: counts how often it is asked.
const served = keyDocument([{ id: GITHUB_KEY_ID, pem: github.pem }])
let keyRequests = 0
const keyServer = http.createServer((_request, response) => {
  keyRequests++
  response.setHeader('content-type', 'application/json')
  response.end(served)
})
await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve))
t.teardown(async () => {
  keyServer.closeAllConnections()
  await new Promise((resolve) => keyServer.close(resolve))
})
const KEYS_URL = `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}${URL_PATH}`

function signed (body: string, privateKey = github.privateKey, keyId = GITHUB_KEY_ID): Record<string, string> {
  return {
    'content-type': 'application/json',
    'github-public-key-identifier': keyId,
    'github-public-key-signature': sign('sha256', Buffer.from(body), { key: privateKey, dsaEncoding: 'der' }).toString('base64')
  }
}

/** `token` with its last character changed: the checksum no longer verifies. */
const corrupt = (token: string): string => token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')

const finding = (token: string): { token: string, type: string, url: string, source: string } =>
  ({ token, type: 'tessera_personal_access_token', url: 'https://github.com/octo/leaky/blob/abc123/config.yml', source: 'content' })

async function report (app: FastifyInstance, body: string, headers: Record<string, string>): Promise<ReturnType<FastifyInstance['inject']> extends Promise<infer R> ? R : never> {
  return await app.inject({ method: 'POST', url: '/api/v1/secret-scanning/github', payload: body, headers })
}

const { app } = await buildWith(t, { SECRET_SCANNING_GITHUB_KEYS: KEYS_URL })
await seedUser(app, 'alice')
const resourceServer = await seedApplication(app, ['introspect'])
const resourceAuth = basic(resourceServer.clientId, resourceServer.clientSecret)
const isActive = async (token: string): Promise<boolean> => (await introspection(app, token, resourceAuth)).json().active === true
const leakedEvents = async (tokenId: string): Promise<AuditEvent[]> => await app.orm.em.fork().find(AuditEvent, { action: 'token.leaked', targetId: tokenId })

t.test('a live token found by GitHub: true_positive, revoked at once, token.leaked recorded with where it was found', async (t) => {
  const leaked = await seedToken(app, 'alice', { name: 'ci', scopes: ['read:tokens'] })
  t.equal(await isActive(leaked.token), true, 'active (and cached) before the report')
  const body = JSON.stringify([finding(leaked.token)])
  const res = await report(app, body, signed(body))
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), [{ token_hash: hash('sha256', leaked.token, 'hex'), token_type: 'tessera_personal_access_token', label: 'true_positive' }])
  t.notMatch(res.body, leaked.token, 'the raw token is never sent back')
  t.equal(await isActive(leaked.token), false, 'inactive on the very next request')
  const [event, ...more] = await leakedEvents(leaked.id)
  t.equal(more.length, 0)
  t.match(event, { actor: 'github-secret-scanning', target: 'ci', details: { url: 'https://github.com/octo/leaky/blob/abc123/config.yml', source: 'content', type: 'tessera_personal_access_token', revoked: true } })
  const revoked = await app.orm.em.fork().find(AuditEvent, { action: 'token.revoked', targetId: leaked.id })
  t.match(revoked, [{ details: { reason: 'leaked: reported by GitHub secret scanning' } }])

  // GitHub may report it again (another repository): still ours, nothing left to revoke.
  const again = JSON.stringify([{ ...finding(leaked.token), url: 'https://github.com/octo/other/blob/def/x' }])
  t.match((await report(app, again, signed(again))).json(), [{ label: 'true_positive' }])
  t.match(await leakedEvents(leaked.id), [{ details: { revoked: true } }, { details: { revoked: false, url: 'https://github.com/octo/other/blob/def/x' } }])
})

t.test('strings that are not live tokens of this server: false_positive, nothing recorded', async (t) => {
  const wrongChecksum = corrupt(generateToken('tsr'))
  const unknown = generateToken('tsr') // well formed, never issued
  const otherPrefix = generateToken('ghp')
  const body = JSON.stringify([finding(wrongChecksum), finding(unknown), finding(otherPrefix), finding('password123')])
  const res = await report(app, body, signed(body))
  t.equal(res.statusCode, 200)
  t.strictSame(res.json().map((answer: { label: string }) => answer.label), ['false_positive', 'false_positive', 'false_positive', 'false_positive'])
  t.equal(await app.orm.em.fork().count(AuditEvent, { action: 'token.leaked' }), 2, 'only the first test\'s two events')
})

t.test('one token twice in a report: one event, an answer for each', async (t) => {
  const leaked = await seedToken(app, 'alice', { name: 'twice', scopes: ['read:tokens'] })
  const body = JSON.stringify([finding(leaked.token), { ...finding(leaked.token), url: 'https://github.com/octo/leaky/blob/abc123/copy.yml' }])
  t.match((await report(app, body, signed(body))).json(), [{ label: 'true_positive' }, { label: 'true_positive' }])
  t.equal((await leakedEvents(leaked.id)).length, 1)
})

t.test('an unsigned or wrongly signed report: 401, the same for a real token and a made-up one, and nothing changes', async (t) => {
  const victim = await seedToken(app, 'alice', { name: 'victim', scopes: ['read:tokens'] })
  const real = JSON.stringify([finding(victim.token)])
  const fake = JSON.stringify([finding(generateToken('tsr'))])
  const impostor = keyPair()
  const attempts: Array<[string, string, Record<string, string>]> = []
  for (const [what, body] of [['a real token', real], ['a made-up token', fake]] as const) {
    attempts.push(
      [`${what}, no signature headers`, body, { 'content-type': 'application/json' }],
      [`${what}, signed by another key under GitHub's key id`, body, signed(body, impostor.privateKey)],
      [`${what}, the body changed after signing`, body, signed(body.replace('content', 'commit'))],
      [`${what}, a signature that is not base64 DER`, body, { ...signed(body), 'github-public-key-signature': 'not a signature' }],
      [`${what}, an empty signature`, body, { ...signed(body), 'github-public-key-signature': '' }]
    )
  }
  const answers = new Set<string>()
  for (const [what, body, headers] of attempts) {
    const res = await report(app, body, headers)
    t.equal(res.statusCode, 401, what)
    t.equal(res.json().code, 'TESSERA_REPORT_SIGNATURE_INVALID', what)
    answers.add(JSON.stringify({ ...res.json(), instance: null }))
  }
  t.equal(answers.size, 1, 'one answer for every refusal: a refused report learns nothing about any token')
  t.equal(await isActive(victim.token), true, 'the real token was not revoked')
  t.equal((await leakedEvents(victim.id)).length, 0)
})

t.test('an unknown key id: the keys are asked for again, at most once a minute', async (t) => {
  const before = keyRequests
  const body = JSON.stringify([finding(generateToken('tsr'))])
  const first = await report(app, body, signed(body, github.privateKey, 'f'.repeat(64)))
  t.equal(first.statusCode, 401)
  t.ok(keyRequests - before <= 1, 'asked at most once')
  const asked = keyRequests
  for (let n = 0; n < 5; n++) t.equal((await report(app, body, signed(body, github.privateKey, `${n}`.repeat(64)))).statusCode, 401)
  t.equal(keyRequests, asked, 'made-up key ids do not make the server ask again')
})

t.test('a signed report that is not JSON, or not a list of findings: 400', async (t) => {
  const notJson = 'token=tsr_x'
  const res = await report(app, notJson, signed(notJson))
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'TESSERA_REPORT_NOT_JSON')
  const notAList = JSON.stringify({ token: 'x' })
  const shape = await report(app, notAList, signed(notAList))
  t.equal(shape.statusCode, 400)
  t.equal(shape.json().code, 'FST_ERR_VALIDATION')
  const missing = JSON.stringify([{ token: 'x' }])
  t.equal((await report(app, missing, signed(missing))).statusCode, 400)
})

t.test('keys from a file; a key source that cannot be read is a 503 with Retry-After', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'tessera-scanning-'))
  t.teardown(async () => { await rm(directory, { recursive: true, force: true }) })
  const file = join(directory, 'keys.json')
  await writeFile(file, keyDocument([{ id: GITHUB_KEY_ID, pem: github.pem }]))
  const { app: fromFile } = await buildWith(t, { SECRET_SCANNING_GITHUB_KEYS: file })
  await seedUser(fromFile, 'bob')
  const leaked = await seedToken(fromFile, 'bob', { name: 'leaked', scopes: ['read:tokens'] })
  const body = JSON.stringify([finding(leaked.token)])
  t.match((await report(fromFile, body, signed(body))).json(), [{ label: 'true_positive' }])

  const { app: noKeys } = await buildWith(t, { SECRET_SCANNING_GITHUB_KEYS: `http://127.0.0.1:${await freePort()}${URL_PATH}` })
  const res = await report(noKeys, body, signed(body))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'TESSERA_REPORT_KEYS_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '60')
})

t.test('without SECRET_SCANNING_GITHUB_KEYS the endpoint is not served', async (t) => {
  const { app: plain } = await buildWith(t)
  const body = JSON.stringify([finding(generateToken('tsr'))])
  t.equal((await report(plain, body, signed(body))).statusCode, 404)
})

t.test('a string whose checksum does not verify is answered without the database', async (t) => {
  // The database behind a proxy the test cuts: a lookup would answer 503.
  const db = await createTestDatabase()
  t.teardown(async () => { await db.close() })
  const proxy = await startProxy({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port) })
  t.teardown(async () => { await proxy.close() })
  const { app: cut } = await buildWith(t, { SECRET_SCANNING_GITHUB_KEYS: KEYS_URL, DATABASE_TIMEOUT_MS: '500' }, { db: { url: proxy.url(db.url), embedded: db.embedded, close: async () => {} } })
  t.teardown(() => { proxy.restore() })
  proxy.down()
  const wrongChecksum = corrupt(generateToken('tsr'))
  const quick = JSON.stringify([finding(wrongChecksum), finding('not-a-token')])
  const res = await report(cut, quick, signed(quick))
  t.equal(res.statusCode, 200, 'answered with the database gone')
  t.match(res.json(), [{ label: 'false_positive' }, { label: 'false_positive' }])
  const lookup = JSON.stringify([finding(generateToken('tsr'))])
  t.equal((await report(cut, lookup, signed(lookup))).statusCode, 503, 'a well-formed token needs the database (the control)')
})
