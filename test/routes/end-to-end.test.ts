import t from 'tap'
import { basic, bearer, build, introspection, seedApplication, seedToken, seedUser } from '../helper.js'

t.test('a personal token created with the password introspects as active', async (t) => {
  const app = await build(t)
  await seedUser(app, 'alice')
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/users/alice/tokens',
    headers: { authorization: basic('alice', 'correct horse battery') },
    payload: { name: 'ci', scopes: ['write:repository'] }
  })
  t.equal(created.statusCode, 201)
  const { token } = created.json()
  const client = await seedApplication(app)
  const res = await introspection(app, token, basic(client.clientId, client.clientSecret))
  t.equal(res.statusCode, 200)
  t.match(res.json(), { active: true, scope: 'write:repository read:repository', username: 'alice', client_id: 'internal' })
  const seeded = await seedToken(app, 'alice')
  const info = await app.inject({ method: 'GET', url: '/oauth/token/info', headers: { authorization: bearer(seeded.token) } })
  t.equal(info.statusCode, 200)
})
