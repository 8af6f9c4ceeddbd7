import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { generateToken } from '../../src/services/token-format.js'
import { bearer, build, seedToken, seedUser } from '../helper.js'

/**
 * Link headers (plugins/app/links.ts) repeat only what the route declares, and take their origin
 * from PUBLIC_URL or from a Host that is nothing but a host: a value in the URL or in a header
 * must never reach another relation or another origin (issue 12).
 */

/** With PUBLIC_URL unset, links are built from the request's own scheme and host. */
const DEFAULT_PUBLIC_URL = 'http://127.0.0.1:3000'

async function listingApp (env: Record<string, string> = {}): Promise<{ app: FastifyInstance, list: (query: string, headers?: Record<string, string>) => Promise<LightMyRequestResponse> }> {
  const app = await build(t, env)
  await seedUser(app, 'root', { admin: true })
  const adminToken = (await seedToken(app, 'root', { scopes: ['admin'] })).token
  await seedUser(app, 'lena')
  for (const name of ['one', 'two', 'three']) await seedToken(app, 'lena', { name })
  return {
    app,
    list: async (query, headers = {}) => await app.inject({
      method: 'GET',
      url: `/api/v1/admin/users/lena/tokens?${query}`,
      headers: { authorization: bearer(adminToken), ...headers }
    })
  }
}

const { list } = await listingApp()

/** Each relation of a Link header: its URL and rel. */
function relations (res: LightMyRequestResponse): Array<{ url: string, rel: string }> {
  const header = String(res.headers.link ?? '')
  return [...header.matchAll(/<([^>]*)>; rel="([^"]*)"/g)].map(([, url = '', rel = '']) => ({ url, rel }))
}

t.test('an unknown query parameter (a token in ?access_token=) is not repeated in Link; the route\'s filters are kept', async (t) => {
  const secret = generateToken('tsr')
  const res = await list(`state=all&access_token=${secret}&token=${secret}&limit=1&page=2`, { host: 'tessera.example' })
  t.equal(res.statusCode, 200)
  t.notOk(String(res.headers.link).includes(secret), 'the secret is in no relation')
  t.notMatch(String(res.headers.link), /access_token|[?&]token=/)
  const base = 'http://tessera.example/api/v1/admin/users/lena/tokens?state=all'
  t.strictSame(relations(res), [
    { url: `${base}&page=1&limit=1`, rel: 'first' },
    { url: `${base}&page=3&limit=1`, rel: 'last' },
    { url: `${base}&page=3&limit=1`, rel: 'next' },
    { url: `${base}&page=1&limit=1`, rel: 'prev' }
  ])
})

t.test('several declared filters keep their order and values; the paging ones are replaced', async (t) => {
  const res = await list('q=o&limit=1&utm_source=mail&state=active')
  t.strictSame(relations(res).map((relation) => relation.rel), ['first', 'last', 'next'])
  // light-my-request's own Host: localhost:80.
  t.equal(relations(res)[2]?.url, 'http://localhost:80/api/v1/admin/users/lena/tokens?q=o&state=active&page=2&limit=1')
})

t.test('a Host header that would close the URL injects no relation: the configured public URL is used', async (t) => {
  const res = await list('limit=1', { host: 'evil.example>; rel="next", <https://evil' })
  t.equal(res.statusCode, 200)
  t.notMatch(String(res.headers.link), /evil/)
  t.strictSame(relations(res), [
    { url: `${DEFAULT_PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=1&limit=1`, rel: 'first' },
    { url: `${DEFAULT_PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=3&limit=1`, rel: 'last' },
    { url: `${DEFAULT_PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=2&limit=1`, rel: 'next' }
  ])
})

t.test('any Host that is not a bare host[:port] falls back to the configured public URL', async (t) => {
  for (const host of ['evil.example/path', 'user@evil.example', 'evil.example:80:80', 'evil example', '[::1', 'evil.example:port', 'a'.repeat(254)]) {
    t.equal(relations(await list('limit=1', { host }))[0]?.url, `${DEFAULT_PUBLIC_URL}/api/v1/admin/users/lena/tokens?page=1&limit=1`, host)
  }
})

t.test('a well-formed Host (name, IPv4, IPv6, with or without a port) is the links\' origin', async (t) => {
  for (const host of ['tessera.example', 'tessera-1.internal:8443', '192.0.2.7:3000', '[::1]:3000', '[2001:db8::7]']) {
    t.equal(relations(await list('limit=1', { host }))[0]?.url, `http://${host}/api/v1/admin/users/lena/tokens?page=1&limit=1`, host)
  }
})

t.test('behind a trusted proxy, a forged X-Forwarded-Proto or -Host is refused the same way', async (t) => {
  const proxied = await listingApp({ TRUST_PROXY: 'true' })
  const first = async (headers: Record<string, string>): Promise<string | undefined> => relations(await proxied.list('limit=1', headers))[0]?.url
  const path = '/api/v1/admin/users/lena/tokens?page=1&limit=1'
  t.equal(await first({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'tessera.example' }), `https://tessera.example${path}`, 'a real proxy\'s headers are honoured')
  t.equal(await first({ 'x-forwarded-proto': 'javascript', 'x-forwarded-host': 'tessera.example' }), `${DEFAULT_PUBLIC_URL}${path}`)
  t.equal(await first({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example>; rel="next"' }), `${DEFAULT_PUBLIC_URL}${path}`)
})

t.test('with PUBLIC_URL set, the Host header plays no part', async (t) => {
  const configured = await listingApp({ PUBLIC_URL: 'https://auth.example.test' })
  t.equal(relations(await configured.list('limit=1', { host: 'other.example' }))[0]?.url, 'https://auth.example.test/api/v1/admin/users/lena/tokens?page=1&limit=1')
})
