import t from 'tap'
import { logSerializers, maskUrl } from '../../src/http/log-serializers.js'
import { base62, generateToken } from '../../src/services/token-format.js'

t.test('maskUrl masks secrets in the path and the query', async (t) => {
  const token = generateToken('tsr')
  t.equal(maskUrl(`/api/v1/users/alice/tokens/${token}`), `/api/v1/users/alice/tokens/tsr_…${token.slice(-4)}`)
  t.equal(maskUrl(`/api/v1/tokens?q=${token}`), `/api/v1/tokens?q=tsr_…${token.slice(-4)}`)
  t.equal(maskUrl('/api/v1/tokens?limit=5&max_id=0190f3a2'), '/api/v1/tokens?limit=5&max_id=0190f3a2', 'ordinary queries are kept')
  t.equal(maskUrl('/healthz'), '/healthz')
})

t.test('maskUrl drops the values of secret-bearing query parameters, whatever their shape', async (t) => {
  t.equal(maskUrl('/oauth/token/info?access_token=hunter2hunter2&pretty=1'), '/oauth/token/info?access_token=[redacted]&pretty=1')
  t.equal(maskUrl('/x?password=correct%20horse&client_secret=s3cret&token=abc&secret=1&code=2&refresh_token=3&id_token=4'),
    '/x?password=[redacted]&client_secret=[redacted]&token=[redacted]&secret=[redacted]&code=[redacted]&refresh_token=[redacted]&id_token=[redacted]')
  t.equal(maskUrl('/x?Access_Token=abc&access%5Ftoken=def&access+token=ghi'), '/x?Access_Token=[redacted]&access%5Ftoken=[redacted]&access+token=ghi',
    'names are compared case-insensitively and decoded')
  t.equal(maskUrl('/x?token&%E0%A4%A=1'), '/x?token&%E0%A4%A=1', 'a name without a value, or one that does not decode, is kept')
})

t.test('the req serializer logs Fastify\'s fields with the URL masked', async (t) => {
  const secret = `tsrcs_${base62(40)}`
  const request = { method: 'GET', url: `/nowhere/${secret}?password=x`, headers: { 'accept-version': ['1', '2'] }, host: 'localhost', ip: '127.0.0.1', socket: { remotePort: 4242 } }
  t.strictSame(logSerializers.req(request as never), {
    method: 'GET',
    url: `/nowhere/tsrcs_…${secret.slice(-4)}?password=[redacted]`,
    version: '1',
    host: 'localhost',
    remoteAddress: '127.0.0.1',
    remotePort: 4242
  })
})

t.test('the err serializer masks what an error quotes', async (t) => {
  const token = generateToken('tsr')
  const error = Object.assign(new Error(`invalid input syntax for type uuid: "${token}"`), { code: '22P02', detail: token })
  const serialized = logSerializers.err(error as never)
  t.match(serialized, { type: 'Error', message: `invalid input syntax for type uuid: "tsr_…${token.slice(-4)}"`, code: '22P02', detail: `tsr_…${token.slice(-4)}` })
  t.notOk(JSON.stringify(serialized).includes(token))
})
