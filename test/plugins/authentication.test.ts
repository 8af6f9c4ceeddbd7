import t from 'tap'
import { bearerChallenge, parseAuthorization } from '../../plugins/app/authentication.js'

function base64 (text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

t.test('parseAuthorization', async (t) => {
  t.test('an absent or empty header is no authorization at all', async (t) => {
    t.equal(parseAuthorization(undefined), null)
    t.equal(parseAuthorization(''), null)
  })

  t.test('Basic yields the username and the password', async (t) => {
    t.strictSame(parseAuthorization(`Basic ${base64('alice:s3cret')}`), { scheme: 'basic', username: 'alice', password: 's3cret' })
  })

  t.test('the scheme name is case-insensitive', async (t) => {
    const expected = { scheme: 'basic', username: 'alice', password: 's3cret' }
    t.strictSame(parseAuthorization(`basic ${base64('alice:s3cret')}`), expected)
    t.strictSame(parseAuthorization(`BASIC ${base64('alice:s3cret')}`), expected)
    t.strictSame(parseAuthorization('bearer abc'), { scheme: 'bearer', token: 'abc' })
    t.strictSame(parseAuthorization('BEARER abc'), { scheme: 'bearer', token: 'abc' })
  })

  t.test('a password may contain colons: only the first colon separates the username', async (t) => {
    t.strictSame(parseAuthorization(`Basic ${base64('alice:a:b::c')}`), { scheme: 'basic', username: 'alice', password: 'a:b::c' })
  })

  t.test('an empty password or username is parsed, and left to the caller to refuse', async (t) => {
    t.strictSame(parseAuthorization(`Basic ${base64('alice:')}`), { scheme: 'basic', username: 'alice', password: '' })
    t.strictSame(parseAuthorization(`Basic ${base64(':secret')}`), { scheme: 'basic', username: '', password: 'secret' })
  })

  t.test('Basic credentials are decoded as UTF-8', async (t) => {
    t.strictSame(parseAuthorization(`Basic ${base64('zoë:pässwörd ✓')}`), { scheme: 'basic', username: 'zoë', password: 'pässwörd ✓' })
  })

  t.test('Basic credentials without a colon are malformed', async (t) => {
    t.strictSame(parseAuthorization(`Basic ${base64('alice')}`), { scheme: 'malformed' })
  })

  t.test('Basic credentials that are not base64 are malformed', async (t) => {
    t.strictSame(parseAuthorization('Basic !!not-base64!!'), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('Basic YWxp Y2U6eA=='), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('Basic YWxpY2U6eA===='), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('Basic '), { scheme: 'malformed' })
  })

  t.test('Bearer yields the token, with surrounding spaces trimmed', async (t) => {
    t.strictSame(parseAuthorization('Bearer tsr_abc'), { scheme: 'bearer', token: 'tsr_abc' })
    t.strictSame(parseAuthorization('Bearer    tsr_abc  '), { scheme: 'bearer', token: 'tsr_abc' })
  })

  t.test('an empty bearer token is malformed', async (t) => {
    t.strictSame(parseAuthorization('Bearer '), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('Bearer    '), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('Bearer'), { scheme: 'malformed' })
  })

  t.test('a bearer value with an inner space is malformed', async (t) => {
    t.strictSame(parseAuthorization('Bearer one two'), { scheme: 'malformed' })
  })

  t.test('a header without a space after the scheme is malformed', async (t) => {
    t.strictSame(parseAuthorization('Basic'), { scheme: 'malformed' })
    t.strictSame(parseAuthorization('tsr_abc'), { scheme: 'malformed' })
  })

  t.test('other schemes are unsupported', async (t) => {
    t.strictSame(parseAuthorization('Digest username="alice"'), { scheme: 'unsupported' })
    t.strictSame(parseAuthorization('Negotiate abc'), { scheme: 'unsupported' })
    t.strictSame(parseAuthorization('Token abc'), { scheme: 'unsupported' })
  })
})

t.test('bearerChallenge', async (t) => {
  t.test('without an error it is the bare realm', async (t) => {
    t.equal(bearerChallenge(), 'Bearer realm="tessera"')
  })

  t.test('with an error and a description it names both', async (t) => {
    t.equal(bearerChallenge('invalid_token', 'The access token is invalid'), 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
    t.equal(bearerChallenge('insufficient_scope'), 'Bearer realm="tessera", error="insufficient_scope"')
  })

  t.test('quotes and backslashes cannot break out of the quoted description', async (t) => {
    t.equal(bearerChallenge('invalid_request', 'say "hi" \\ bye'), 'Bearer realm="tessera", error="invalid_request", error_description="say hi  bye"')
  })
})
