import t from 'tap'
import { basic, build, seedApplication, seedToken, seedUser } from '../../helper.js'

// The cached answers and the in-process introspection budget as a real client sees them, over
// a listening server: kept bytes go out with the right length and type, and the budget's 429
// carries Retry-After and the RateLimit fields.

const app = await build(t, { RATE_LIMIT_INTROSPECT_PER_CLIENT: '3', RATE_LIMIT_WINDOW: '60' })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const introspector = await seedApplication(app)
const other = await seedApplication(app)
await seedUser(app, 'wire')
const { token } = await seedToken(app, 'wire', { scopes: ['read:tokens'] })

async function introspect (authorization: string): Promise<Response> {
  return await fetch(`${base}/oauth/introspect`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${token}`
  })
}

t.test('kept answer bytes: the same body, its exact length and JSON type, for each request', async (t) => {
  const caller = basic(introspector.clientId, introspector.clientSecret)
  const first = await introspect(caller)
  const firstBody = await first.text()
  const second = await introspect(caller)
  const secondBody = await second.text()
  t.equal(first.status, 200)
  t.equal(second.status, 200)
  t.equal(secondBody, firstBody)
  t.equal(second.headers.get('content-type'), 'application/json; charset=utf-8')
  t.equal(Number(second.headers.get('content-length')), Buffer.byteLength(secondBody))
  t.match(JSON.parse(secondBody), { active: true, username: 'wire', scope: 'read:tokens' })
})

t.test("the per-caller budget: the fourth request in the window is 429 with Retry-After; another caller's budget is its own", async (t) => {
  const caller = basic(introspector.clientId, introspector.clientSecret)
  // Two were spent above.
  t.equal((await introspect(caller)).status, 200)
  const refused = await introspect(caller)
  t.equal(refused.status, 429)
  const retryAfter = Number(refused.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} within the window`)
  t.match(await refused.json(), { error: 'rate_limited' })
  t.equal((await introspect(basic(other.clientId, other.clientSecret))).status, 200)
})
