import t from 'tap'
import { addressKey, trustProxyOption } from '../../src/http/address.js'

t.test('an IPv4 address is its own key', async (t) => {
  t.equal(addressKey('192.0.2.10'), '192.0.2.10')
})

t.test('an IPv6 address counts by its /64, however it is written', async (t) => {
  const key = '2001:db8:1:2::/64'
  t.equal(addressKey('2001:db8:1:2::1'), key)
  t.equal(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), key)
  t.equal(addressKey('2001:0DB8:0001:0002:0000:0000:0000:0abc'), key, 'leading zeros and case do not matter')
  t.equal(addressKey('2001:db8:1:2:a:b:1.2.3.4'), key, 'nor a trailing dotted quad')
  t.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'a zone index is dropped')
  t.not(addressKey('2001:db8:1:3::1'), key, 'the next /64 is another key')
  t.equal(addressKey('::1'), '0:0:0:0::/64')
})

t.test('an IPv4-mapped IPv6 address is the IPv4 address', async (t) => {
  t.equal(addressKey('::ffff:192.0.2.10'), '192.0.2.10')
  t.equal(addressKey('::ffff:c000:20a'), '192.0.2.10')
})

t.test('something that is not an address is kept as it is', async (t) => {
  t.equal(addressKey('unknown'), 'unknown')
})

t.test('a hop count trusts that many proxies, counted from the peer (Fastify 5 would trust none)', async (t) => {
  const trust = trustProxyOption(2)
  t.type(trust, 'function')
  if (typeof trust !== 'function') return
  t.strictSame([0, 1, 2].map((hop) => trust('10.0.0.1', hop)), [true, true, false])
  t.equal(trustProxyOption(0), false)
  t.equal(trustProxyOption(true), true)
  t.strictSame(trustProxyOption(['10.0.0.0/8']), ['10.0.0.0/8'])
})
