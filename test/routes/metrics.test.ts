import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../../src/config.js'
import { basic, bearer, build, introspect, seedApplication, seedToken, seedUser, TEST_ENV } from '../helper.js'

/** The value of one sample line (`name{labels} value`), or undefined when the line is absent. */
function sample (text: string, name: string, labels = ''): number | undefined {
  const prefix = `${name}${labels === '' ? '' : `{${labels}}`} `
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix))
  return line === undefined ? undefined : Number(line.slice(prefix.length))
}

async function scrape (app: FastifyInstance, authorization?: string): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers: authorization !== undefined ? { authorization } : {} })
  if (res.statusCode !== 200) throw new Error(`GET /metrics answered ${res.statusCode}: ${res.body}`)
  return res.body
}

t.test('GET /metrics reports requests, validation outcomes, the cache and the pool', async (t) => {
  const app = await build(t)
  await seedUser(app, 'alice')
  const { token } = await seedToken(app, 'alice', { scopes: ['read:tokens'] })
  const caller = await seedApplication(app)
  const auth = basic(caller.clientId, caller.clientSecret)

  const before = await scrape(app)
  t.match(before, /# TYPE tessera_http_request_duration_seconds histogram/)
  t.equal(sample(before, 'tessera_token_validations_total', 'endpoint="introspect",outcome="active"'), 0)
  t.equal(sample(before, 'tessera_token_cache_entries'), 0)
  t.ok(sample(before, 'tessera_process_resident_memory_bytes')! > 0, 'process metrics come along')

  t.equal((await introspect(app, token, auth)).active, true, 'first: a miss')
  t.equal((await introspect(app, token, auth)).active, true, 'second: a hit')
  t.equal((await introspect(app, `${token.slice(0, -4)}AAAA`, auth)).active, false, 'a bad checksum never reaches the cache')
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(token) } })
  t.equal(info.statusCode, 200)
  const refused = await app.inject({ method: 'GET', url: '/auth/verify', headers: { authorization: bearer('tsr_nonsense') } })
  t.equal(refused.statusCode, 401)

  const after = await scrape(app)
  t.equal(sample(after, 'tessera_token_validations_total', 'endpoint="introspect",outcome="active"'), 2)
  t.equal(sample(after, 'tessera_token_validations_total', 'endpoint="introspect",outcome="inactive"'), 1)
  t.equal(sample(after, 'tessera_token_validations_total', 'endpoint="token_info",outcome="active"'), 1)
  t.equal(sample(after, 'tessera_token_validations_total', 'endpoint="verify",outcome="inactive"'), 1)
  t.equal(sample(after, 'tessera_token_cache_misses_total'), 1, 'one miss: the first introspection')
  t.equal(sample(after, 'tessera_token_cache_hits_total'), 2, 'the second introspection and token/info')
  t.equal(sample(after, 'tessera_token_cache_entries'), 1)
  t.equal(sample(after, 'tessera_client_credential_cache_entries'), 1)
  t.equal(sample(after, 'tessera_http_request_duration_seconds_count', 'method="POST",route="/oauth/introspect",status_code="200"'), 3)
  t.equal(sample(after, 'tessera_http_request_duration_seconds_count', 'method="GET",route="/auth/verify",status_code="401"'), 1)
  t.ok(sample(after, 'tessera_db_pool_connections', 'state="total"')! >= 1, 'the pool has a connection')
  t.equal(sample(after, 'tessera_db_pool_connections', 'state="waiting"'), 0)
  t.equal(sample(after, 'tessera_cache_invalidation_listening'), 1)
})

t.test('revocations count as published invalidations on a server database', async (t) => {
  const app = await build(t)
  await seedUser(app, 'bob')
  const { token, id } = await seedToken(app, 'bob', { scopes: ['write:tokens'] })
  const res = await app.inject({ method: 'POST', url: `/api/v1/tokens/${id}/invalidate`, headers: { authorization: bearer(token) } })
  t.equal(res.statusCode, 200)
  const text = await scrape(app)
  // The embedded database has no other replica to tell; a server database gets one NOTIFY.
  t.equal(sample(text, 'tessera_cache_invalidations_published_total'), app.config.embeddedDatabase ? 0 : 1)
  t.equal(sample(text, 'tessera_cache_invalidation_publish_failures_total'), 0)
})

t.test('METRICS_TOKEN protects the endpoint; METRICS_ENABLED=false removes it', async (t) => {
  const secret = 'metrics-scraper-secret-0123'
  const guarded = await build(t, { METRICS_TOKEN: secret })
  const none = await guarded.inject({ method: 'GET', url: '/metrics' })
  t.equal(none.statusCode, 401)
  t.match(none.json(), { detail: /METRICS_TOKEN/ })
  t.equal(none.headers['www-authenticate'], 'Bearer realm="tessera"')
  const wrong = await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: bearer(`${secret}x`) } })
  t.equal(wrong.statusCode, 401)
  const basicAuth = await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: basic('prometheus', secret) } })
  t.equal(basicAuth.statusCode, 401)
  t.match(await scrape(guarded, bearer(secret)), /tessera_token_cache_hits_total/)

  const disabled = await build(t, { METRICS_ENABLED: 'false' })
  const res = await disabled.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404)
})

t.test('a METRICS_TOKEN shorter than 16 characters is refused at start', async (t) => {
  t.throws(() => loadConfig({ ...TEST_ENV, METRICS_TOKEN: 'short' }), /METRICS_TOKEN must be at least 16 characters/)
  t.throws(() => loadConfig({ ...TEST_ENV, METRICS_ENABLED: 'maybe' }), /METRICS_ENABLED/)
})
