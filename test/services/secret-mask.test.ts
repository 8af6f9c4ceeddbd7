import t from 'tap'
import { EnvSchema } from '../../schemas/env.js'
import { maskSecrets, maskSecretsDeep, SECRET_PREFIX_SOURCE } from '../../src/services/secret-mask.js'
import { base62, generateToken } from '../../src/services/token-format.js'

const JWT = 'eyJhbGciOiJFUzI1NiIsImtpZCI6IjAxIn0.eyJzdWIiOiJhbGljZSIsInNjb3BlIjoicmVhZDp0b2tlbnMifQ.MEUCIQDx-8yUq_3fA9kLmN2oPqRsTuVwXyZ0123456789abcd'

t.test('a token, checksum-valid or not, is masked to its prefix and last four characters', async (t) => {
  const token = generateToken('tsr')
  t.equal(maskSecrets(token), `tsr_…${token.slice(-4)}`)
  const mistyped = `${token.slice(0, -1)}${token.endsWith('x') ? 'y' : 'x'}`
  t.equal(maskSecrets(mistyped), `tsr_…${mistyped.slice(-4)}`, 'a wrong checksum does not make it less secret')
  const truncated = token.slice(0, -6)
  t.equal(maskSecrets(truncated), `tsr_…${truncated.slice(-4)}`, 'the whole 32-character body without its checksum')
  const longer = `${token}Zq`
  t.equal(maskSecrets(longer), `tsr_…${longer.slice(-4)}`, 'trailing characters go with it')
})

t.test('a client secret is masked the same way', async (t) => {
  const secret = `tsrcs_${base62(40)}`
  t.equal(maskSecrets(secret), `tsrcs_…${secret.slice(-4)}`)
  t.equal(maskSecrets(`client:${secret}`), `client:tsrcs_…${secret.slice(-4)}`)
})

t.test('a JWT is masked to eyJ… and its last four characters', async (t) => {
  t.equal(maskSecrets(JWT), 'eyJ…abcd')
  t.equal(maskSecrets(`Bearer ${JWT}`), 'Bearer eyJ…abcd')
  t.equal(maskSecrets(`access_token=${JWT}&x=1`), 'access_token=eyJ…abcd&x=1')
})

t.test('secrets are found inside any text: paths, queries, labels, messages', async (t) => {
  const token = generateToken('tsr')
  const hint = token.slice(-4)
  t.equal(maskSecrets(`/api/v1/users/alice/tokens/${token}`), `/api/v1/users/alice/tokens/tsr_…${hint}`)
  t.equal(maskSecrets(`/oauth/token/info?access_token=${token}&pretty=1`), `/oauth/token/info?access_token=tsr_…${hint}&pretty=1`)
  t.equal(maskSecrets(`alice has no token with id or name "${token}"`), `alice has no token with id or name "tsr_…${hint}"`)
  t.equal(maskSecrets(`${token} ${token}`), `tsr_…${hint} tsr_…${hint}`, 'every occurrence')
  t.equal(maskSecrets(`pasted:${token}!`), `pasted:tsr_…${hint}!`)
})

t.test('tokens of any prefix TOKEN_PREFIX allows are masked, not only the configured one', async (t) => {
  // The masker's prefix follows the configuration's rule; if that rule changes, so must the masker.
  t.equal((EnvSchema.properties.TOKEN_PREFIX as { pattern?: string }).pattern, '^[a-z][a-z0-9]{1,15}$')
  const prefixPattern = new RegExp(`^${SECRET_PREFIX_SOURCE}$`)
  for (const prefix of ['ab', 'acme', 'tsr', 'p0123456789abcde', 'p0123456789abcdecs']) {
    t.ok(prefixPattern.test(prefix), `${prefix} is a prefix the masker knows`)
    const token = generateToken(prefix)
    t.equal(maskSecrets(`x ${token} y`), `x ${prefix}_…${token.slice(-4)} y`, `a ${prefix} token`)
  }
})

t.test('ordinary values are left alone, and masking a mask changes nothing', async (t) => {
  const ordinary = [
    '/api/v1/users/alice/tokens/deploy-bot',
    '/api/v1/tokens/0190f3a2-7c41-7bb2-9d1e-3f4a5b6c7d8e/rotate',
    'client:DxSNtGrzfT2gFX3JvzzkstFV',
    'read:tokens write:tokens',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
    'a_b_c',
    `tsr_${base62(31)}`,
    'eyJhbGciOiJub25lIn0',
    '(not a username)',
    ''
  ]
  for (const value of ordinary) t.equal(maskSecrets(value), value, value === '' ? 'the empty string' : value)
  const masked = maskSecrets(`${generateToken('tsr')} ${JWT}`)
  t.equal(maskSecrets(masked), masked)
})

t.test('a long run of look-alike text is scanned in linear time', async (t) => {
  const started = performance.now()
  maskSecrets('eyJ'.repeat(20_000))
  maskSecrets('abcdefghijklmnopqrstuvwxyz'.repeat(2_000) + '_')
  maskSecrets('a_'.repeat(20_000))
  maskSecrets(`.eyJa${'.eyJa'.repeat(10_000)}`)
  t.ok(performance.now() - started < 1000, 'well under a second')
})

t.test('maskSecretsDeep masks every string in arrays and plain objects, and copies', async (t) => {
  const token = generateToken('tsr')
  const secret = `tsrcs_${base62(40)}`
  const date = new Date(0)
  const input = { reason: 'invalid client credentials', label: `client:${secret}`, nested: { list: [token, 3, null, { value: token }] }, when: date, count: 2, ok: true }
  const output = maskSecretsDeep(input)
  t.strictSame(output, {
    reason: 'invalid client credentials',
    label: `client:tsrcs_…${secret.slice(-4)}`,
    nested: { list: [`tsr_…${token.slice(-4)}`, 3, null, { value: `tsr_…${token.slice(-4)}` }] },
    when: date,
    count: 2,
    ok: true
  })
  t.equal(output.when, date, 'a date is kept as it is')
  t.equal(input.label, `client:${secret}`, 'the input is not changed')
  t.equal(maskSecretsDeep(token), `tsr_…${token.slice(-4)}`)
  t.equal(maskSecretsDeep(undefined), undefined)
})
