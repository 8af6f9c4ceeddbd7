import { createHash, createHmac } from 'node:crypto'
import t from 'tap'
import { base62, generateToken, isWellFormedToken, lastEight, safeEqual, SecretDigester, tokenLength } from '../../src/services/token-format.js'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const BODY_LENGTH = 32
const CHECKSUM_LENGTH = 6

/** Replaces the character at `index` with a different base62 character. */
function mutate (token: string, index: number): string {
  const current = token[index] as string
  const replacement = BASE62[(BASE62.indexOf(current) + 1) % BASE62.length] as string
  return token.slice(0, index) + replacement + token.slice(index + 1)
}

t.test('a token is the prefix, an underscore, 32 base62 characters and a 6-character checksum', async (t) => {
  const token = generateToken('tsr')
  t.match(token, /^tsr_[0-9A-Za-z]{38}$/)
  t.equal(token.length, 'tsr_'.length + BODY_LENGTH + CHECKSUM_LENGTH)
  t.equal(tokenLength('tsr'), 42)
  t.equal(tokenLength('acme'), 43)
  t.equal(isWellFormedToken(token, 'tsr'), true)
})

t.test('the random body carries at least 160 bits of entropy', async (t) => {
  // Each base62 character drawn uniformly carries log2(62) bits.
  const bits = BODY_LENGTH * Math.log2(62)
  t.ok(bits >= 160, `${bits.toFixed(1)} bits`)
  t.equal(Math.floor(bits), 190)
  // The body really is BODY_LENGTH characters: the prefix and checksum are the only fixed parts.
  const token = generateToken('tsr')
  t.equal(token.length - 'tsr_'.length - CHECKSUM_LENGTH, BODY_LENGTH)
})

t.test('generated tokens are unique and all well formed', async (t) => {
  const tokens = Array.from({ length: 2000 }, () => generateToken('tsr'))
  t.equal(new Set(tokens).size, tokens.length)
  t.equal(tokens.filter((token) => !isWellFormedToken(token, 'tsr')).length, 0)
  const bodies = new Set(tokens.map((token) => token.slice(4, 4 + BODY_LENGTH)))
  t.equal(bodies.size, tokens.length)
})

t.test('base62 draws only from the 62-character alphabet, and uses all of it', async (t) => {
  const sample = base62(20000)
  t.equal(sample.length, 20000)
  t.match(sample, /^[0-9A-Za-z]+$/)
  t.equal(new Set(sample).size, 62)
  t.equal(base62(0), '')
  t.equal(base62(1).length, 1)
})

t.test('a token with another prefix is refused', async (t) => {
  const token = generateToken('tsr')
  t.equal(isWellFormedToken(token, 'abc'), false)
  t.equal(isWellFormedToken(token, 'tsrx'), false)
  t.equal(isWellFormedToken(token, 'ts'), false)
  // Same length, same tail, different prefix: the checksum covers the prefix too.
  t.equal(isWellFormedToken('abc' + token.slice(3), 'abc'), false)
  // The separator must be an underscore.
  t.equal(isWellFormedToken('tsr-' + token.slice(4), 'tsr'), false)
})

t.test('a token of the wrong length is refused', async (t) => {
  const token = generateToken('tsr')
  t.equal(isWellFormedToken(token + 'a', 'tsr'), false)
  t.equal(isWellFormedToken(token.slice(0, -1), 'tsr'), false)
  t.equal(isWellFormedToken('', 'tsr'), false)
  t.equal(isWellFormedToken('tsr_', 'tsr'), false)
})

t.test('a truncated token is refused', async (t) => {
  const token = generateToken('tsr')
  for (let length = 0; length < token.length; length++) {
    if (isWellFormedToken(token.slice(0, length), 'tsr')) t.fail(`accepted a token truncated to ${length} characters`)
  }
  t.equal(isWellFormedToken(token.slice(0, 20), 'tsr'), false)
})

t.test('a token with a character outside base62 is refused', async (t) => {
  const token = generateToken('tsr')
  for (const bad of ['_', '-', '+', '/', '=', ' ', 'é', '\n']) {
    const tampered = token.slice(0, 10) + bad + token.slice(11)
    t.equal(isWellFormedToken(tampered, 'tsr'), false, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('changing any single character of a token breaks its checksum', async (t) => {
  const token = generateToken('tsr')
  let accepted = 0
  for (let index = 'tsr_'.length; index < token.length; index++) {
    if (isWellFormedToken(mutate(token, index), 'tsr')) accepted++
  }
  t.equal(accepted, 0)
  // Swapping two adjacent differing characters is caught as well.
  const body = token.slice(4)
  const i = [...body].findIndex((char, k) => k > 0 && char !== body[k - 1])
  const swapped = 'tsr_' + body.slice(0, i - 1) + body[i] + body[i - 1] + body.slice(i + 1)
  t.not(swapped, token)
  t.equal(isWellFormedToken(swapped, 'tsr'), false)
})

t.test('lastEight is the last eight characters of the token', async (t) => {
  const token = generateToken('tsr')
  t.equal(lastEight(token), token.slice(-8))
  t.equal(lastEight(token).length, 8)
})

t.test('without a key, SecretDigester is SHA-256 in hex', async (t) => {
  const digester = new SecretDigester('')
  const token = generateToken('tsr')
  t.equal(digester.digest(token), createHash('sha256').update(token).digest('hex'))
  t.equal(digester.digest('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.match(digester.digest(token), /^[0-9a-f]{64}$/)
})

t.test('with a key, SecretDigester is HMAC-SHA256 in hex', async (t) => {
  const key = 'k'.repeat(32)
  const digester = new SecretDigester(key)
  const token = generateToken('tsr')
  t.equal(digester.digest(token), createHmac('sha256', key).update(token).digest('hex'))
  t.not(digester.digest(token), createHash('sha256').update(token).digest('hex'))
  // RFC 4231 test case 2.
  t.equal(new SecretDigester('Jefe').digest('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
})

t.test('different keys give different digests of the same secret', async (t) => {
  const token = generateToken('tsr')
  const one = new SecretDigester('a'.repeat(32)).digest(token)
  const two = new SecretDigester('b'.repeat(32)).digest(token)
  t.not(one, two)
  t.equal(new SecretDigester('a'.repeat(32)).digest(token), one, 'the same key gives the same digest')
})

t.test('safeEqual compares strings exactly, whatever their lengths', async (t) => {
  t.equal(safeEqual('secret', 'secret'), true)
  t.equal(safeEqual('', ''), true)
  t.equal(safeEqual('secret', 'secreT'), false)
  t.equal(safeEqual('secret', 'secret '), false)
  t.equal(safeEqual('secret', ''), false)
  t.equal(safeEqual('a'.repeat(1000), 'a'.repeat(999)), false)
})

t.test('the cache key: one per token and per process, never the stored digest', async (t) => {
  const digester = new SecretDigester('k'.repeat(32))
  const token = generateToken('tsr')
  t.equal(digester.cacheKey(token), digester.cacheKey(token), 'stable within a process')
  t.not(digester.cacheKey(token), digester.cacheKey(generateToken('tsr')), 'different tokens, different keys')
  t.not(digester.cacheKey(token), digester.digest(token), 'not the digest the database stores')
  t.not(new SecretDigester('k'.repeat(32)).cacheKey(token), digester.cacheKey(token), 'a random prefix per instance: meaningless elsewhere')
  t.match(digester.cacheKey(token), /^[A-Za-z0-9_-]{43}$/, 'SHA-256, base64url')
})
