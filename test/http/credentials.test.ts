import t from 'tap'
import { formatChallenge } from '../../src/http/challenge.js'
import { formDecode, parseAuthorization } from '../../src/http/credentials.js'

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

t.test('formatChallenge', async (t) => {
  t.test('without an error it is the bare realm', async (t) => {
    t.equal(formatChallenge({ scheme: 'Bearer' }), 'Bearer realm="tessera"')
  })

  t.test('with an error and a description it names both', async (t) => {
    t.equal(formatChallenge({ scheme: 'Bearer', error: 'invalid_token', description: 'The access token is invalid' }), 'Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid"')
    t.equal(formatChallenge({ scheme: 'Bearer', error: 'insufficient_scope' }), 'Bearer realm="tessera", error="insufficient_scope"')
  })

  t.test('insufficient_scope names the scope the resource needs (RFC 6750 §3)', async (t) => {
    t.equal(formatChallenge({ scheme: 'Bearer', error: 'insufficient_scope', description: 'Requires the admin scope', scope: 'admin' }),
      'Bearer realm="tessera", error="insufficient_scope", error_description="Requires the admin scope", scope="admin"')
  })

  t.test('quotes, backslashes and control characters cannot break out of the quoted values', async (t) => {
    t.equal(formatChallenge({ scheme: 'Bearer', error: 'invalid_request', description: 'say "hi" \\ bye\r\n' }), 'Bearer realm="tessera", error="invalid_request", error_description="say hi  bye"')
    t.equal(formatChallenge({ scheme: 'Bearer', error: 'insufficient_scope', scope: 'a"b' }), 'Bearer realm="tessera", error="insufficient_scope", scope="ab"')
  })

  t.test('Basic is always the bare realm with its charset (RFC 7617 §2.1)', async (t) => {
    t.equal(formatChallenge({ scheme: 'Basic' }), 'Basic realm="tessera", charset="UTF-8"')
  })
})

t.test('formDecode undoes the form-urlencoding of Basic client credentials (RFC 6749 §2.3.1)', async (t) => {
  t.equal(formDecode('plain-id'), 'plain-id')
  t.equal(formDecode('a%2Bb+c'), 'a+b c')
  t.equal(formDecode('bad%E0%A4%A'), null, 'a broken escape is not a credential')
})
