import t from 'tap'
import { Validator } from '@seriousme/openapi-schema-validator'
import { build } from '../helper.js'

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
interface Operation {
  tags?: string[]
  summary?: string
  security?: Array<Record<string, string[]>>
  responses?: Record<string, { description?: string, content?: Record<string, { schema?: Json }> }>
}

/** Every `$ref` in the document, with the JSON path where it appears. */
function collectRefs (node: Json, path = '#'): Array<{ ref: string, at: string }> {
  if (node === null || typeof node !== 'object') return []
  if (Array.isArray(node)) return node.flatMap((child, i) => collectRefs(child, `${path}/${i}`))
  const found = typeof node.$ref === 'string' ? [{ ref: node.$ref, at: path }] : []
  return found.concat(Object.entries(node).flatMap(([key, child]) => collectRefs(child, `${path}/${key}`)))
}

/** Resolves a local JSON pointer (RFC 6901) inside `document`, or undefined. */
function resolvePointer (document: Json, ref: string): Json | undefined {
  if (!ref.startsWith('#/')) return undefined
  let node: Json | undefined = document
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (node === null || typeof node !== 'object' || Array.isArray(node) || !(key in node)) return undefined
    node = node[key]
  }
  return node
}

const app = await build(t)
const res = await app.inject({ method: 'GET', url: '/documentation/json' })
const document = res.json()

t.test('/documentation/json is an OpenAPI 3.1.0 document', async (t) => {
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(document.openapi, '3.1.0')
  t.match(document.info, { title: 'Tessera', version: /^\d+\.\d+\.\d+/ })
  t.strictSame(document.servers, [{ url: 'http://127.0.0.1:3000' }])
  t.match(document.components.securitySchemes, {
    basicAuth: { type: 'http', scheme: 'basic' },
    bearerAuth: { type: 'http', scheme: 'bearer' },
    clientSecretBasic: { type: 'http', scheme: 'basic' }
  })
})

t.test('the document validates against the OpenAPI 3.1 schema', async (t) => {
  const result = await new Validator().validate(structuredClone(document))
  t.strictSame(result.errors ?? [], [], 'no schema errors')
  t.equal(result.valid, true)
})

t.test('it lists every route with tags, summary, security and response schemas', async (t) => {
  const expected: Array<[string, string]> = [
    ['/oauth/introspect', 'post'],
    ['/oauth/token/info', 'get'],
    ['/api/v1/users/{username}/tokens', 'post'],
    ['/healthz', 'get'],
    ['/livez', 'get'],
    ['/readyz', 'get']
  ]
  for (const [path, method] of expected) t.ok(document.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`)

  const declaredTags = new Set((document.tags as Array<{ name: string }>).map((tag) => tag.name))
  const schemes = new Set(Object.keys(document.components.securitySchemes))
  for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
    for (const method of METHODS) {
      const operation = item[method]
      if (operation === undefined) continue
      const name = `${method.toUpperCase()} ${path}`
      t.ok(Array.isArray(operation.tags) && operation.tags.length > 0 && operation.tags.every((tag) => declaredTags.has(tag)), `${name} has declared tags`)
      t.ok(typeof operation.summary === 'string' && operation.summary.length > 0, `${name} has a summary`)
      t.ok(Array.isArray(operation.security) && operation.security.every((requirement) => Object.keys(requirement).every((scheme) => schemes.has(scheme))),
        `${name} declares its security with known schemes`)
      const responses = Object.entries(operation.responses ?? {})
      t.ok(responses.some(([status]) => /^2\d\d$/.test(status)), `${name} documents a success response`)
      for (const [status, response] of responses) {
        if (status === '204') continue
        const schemas = Object.values(response.content ?? {}).map((media) => media.schema)
        t.ok(schemas.length > 0 && schemas.every((schema) => schema !== undefined), `${name} ${status} has a response schema`)
      }
    }
  }
})

t.test('the health routes are public and the others are not', async (t) => {
  t.strictSame(document.paths['/healthz'].get.security, [])
  t.strictSame(document.paths['/readyz'].get.security, [])
  t.strictSame(document.paths['/api/v1/users/{username}/tokens'].post.security, [{ basicAuth: [] }])
  t.strictSame(document.paths['/oauth/token/info'].get.security, [{ bearerAuth: [] }])
  t.ok(document.paths['/oauth/introspect'].post.security.length >= 2, 'introspection accepts client credentials or a bearer token')
})

t.test('token creation documents its body, its one-time answer and its problems', async (t) => {
  const operation = document.paths['/api/v1/users/{username}/tokens'].post
  t.strictSame(operation.tags, ['tokens'])
  t.match(operation.parameters, [{ in: 'path', name: 'username', required: true, schema: { type: 'string', maxLength: 40 } }])
  const body = operation.requestBody.content['application/json'].schema
  t.strictSame(body.required, ['name', 'scopes'])
  t.strictSame(Object.keys(body.properties).sort(), ['audience', 'expires_at', 'expires_in', 'name', 'scopes'])
  t.equal(body.additionalProperties, false)
  t.strictSame(operation.responses['201'].content['application/json'].schema, { $ref: '#/components/schemas/CreatedToken' })
  t.strictSame(document.components.schemas.CreatedToken.required, ['id', 'name', 'sha1', 'token', 'token_last_eight', 'scopes', 'audience', 'created_at', 'expires_at'])
  for (const status of ['400', '401', '403', '409', '413', '429', '503']) {
    t.strictSame(operation.responses[status].content, { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      `${status} is a problem, documented with the media type it is served with`)
  }
})

t.test('OAuth errors are documented as RFC 6749 errors in JSON', async (t) => {
  const operation = document.paths['/oauth/token/info'].get
  t.strictSame(operation.responses['401'].content, { 'application/json': { schema: { $ref: '#/components/schemas/OAuthError' } } })
  t.strictSame(operation.responses['200'].content, { 'application/json': { schema: { $ref: '#/components/schemas/TokenInfo' } } })
})

t.test('every $ref resolves inside the document', async (t) => {
  const refs = collectRefs(document)
  t.ok(refs.length > 0, 'the document uses references')
  for (const { ref, at } of refs) t.ok(resolvePointer(document, ref) !== undefined, `${ref} (at ${at}) resolves`)
  t.notOk(JSON.stringify(document).includes('def-'), 'no anonymous def-N schema names leak into the document')
})

t.test('/documentation serves the interactive page', async (t) => {
  const page = await app.inject({ method: 'GET', url: '/documentation' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<title>Swagger UI<\/title>/)
  const yaml = await app.inject({ method: 'GET', url: '/documentation/yaml' })
  t.equal(yaml.statusCode, 200)
  t.match(yaml.body, /^openapi: 3\.1\.0$/m)
})
