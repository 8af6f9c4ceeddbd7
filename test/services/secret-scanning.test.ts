import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { GithubSignatureVerifier, keyDocumentLoader } from '../../src/services/secret-scanning.js'

/* The verifier's key handling, with a clock the test moves and a real HTTP key source. */

function keyPair (curve = 'P-256'): { privateKey: KeyObject, pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

const signature = (body: Buffer, privateKey: KeyObject): string => sign('sha256', body, { key: privateKey, dsaEncoding: 'der' }).toString('base64')

let document: unknown = null
let status = 200
let requests = 0
const server = http.createServer((_request, response) => {
  requests++
  response.statusCode = status
  response.setHeader('content-type', 'application/json')
  response.end(JSON.stringify(document))
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})
const source = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`
const publish = (...keys: Array<{ id: string, pem: string }>): void => {
  document = { public_keys: keys.map((key) => ({ key_identifier: key.id, key: key.pem, is_current: true })) }
}

const body = Buffer.from('[{"token":"x","type":"t","url":"u","source":"content"}]')

t.test('GitHub rotates its key: a report under the new key id loads the keys again, once the minute since the last load has passed', async (t) => {
  let now = 1_000_000
  const verifier = new GithubSignatureVerifier(keyDocumentLoader(source), () => now)
  const old = keyPair()
  const next = keyPair()
  publish({ id: 'old', pem: old.pem })
  requests = 0
  t.equal(await verifier.check('old', signature(body, old.privateKey), body), 'valid')
  t.equal(requests, 1, 'loaded on first use')
  t.equal(await verifier.check('old', signature(body, old.privateKey), body), 'valid')
  t.equal(requests, 1, 'then kept')

  publish({ id: 'old', pem: old.pem }, { id: 'next', pem: next.pem })
  now += 30_000
  t.equal(await verifier.check('next', signature(body, next.privateKey), body), 'invalid', 'within the minute: not asked again')
  t.equal(requests, 1)
  now += 31_000
  t.equal(await verifier.check('next', signature(body, next.privateKey), body), 'valid', 'after it: asked again, the new key verifies')
  t.equal(requests, 2)
  t.equal(await verifier.check('next', signature(body, old.privateKey), body), 'invalid', 'a signature by another key under that id')
})

t.test('the key source failing: unavailable until a load succeeds; a failed load is not retried within the minute', async (t) => {
  let now = 5_000_000
  const verifier = new GithubSignatureVerifier(keyDocumentLoader(source), () => now)
  const key = keyPair()
  publish({ id: 'k', pem: key.pem })
  status = 500
  requests = 0
  t.equal(await verifier.check('k', signature(body, key.privateKey), body), 'keys-unavailable')
  t.equal(await verifier.check('k', signature(body, key.privateKey), body), 'keys-unavailable')
  t.equal(requests, 1, 'not asked again within the minute')
  status = 200
  now += 60_000
  t.equal(await verifier.check('k', signature(body, key.privateKey), body), 'valid')
  t.equal(requests, 2)
})

t.test('key documents GitHub would not publish: no list, no P-256 key', async (t) => {
  let now = 9_000_000
  const p384 = keyPair('P-384')
  for (const [what, served] of [['no public_keys', { keys: [] }], ['only a P-384 key', { public_keys: [{ key_identifier: 'k', key: p384.pem }] }], ['null', null]] as const) {
    document = served
    now += 60_000
    const verifier = new GithubSignatureVerifier(keyDocumentLoader(source), () => now)
    t.equal(await verifier.check('k', signature(body, p384.privateKey), body), 'keys-unavailable', what)
  }
})

t.test('concurrent reports under an unknown key id share one load', async (t) => {
  const key = keyPair()
  publish({ id: 'shared', pem: key.pem })
  requests = 0
  const verifier = new GithubSignatureVerifier(keyDocumentLoader(source))
  const results = await Promise.all(Array.from({ length: 5 }, async () => await verifier.check('shared', signature(body, key.privateKey), body)))
  t.strictSame(results, ['valid', 'valid', 'valid', 'valid', 'valid'])
  t.equal(requests, 1)
})
