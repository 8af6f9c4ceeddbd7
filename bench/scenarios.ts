import type { LoadSpec } from './load.js'

/** What the scenarios know about the run. */
export interface RunContext {
  /** Seeded tokens, numbered 0 … tokens-1 (bench/tokens.ts). */
  tokens: number
  /** `Basic …` of the application created to introspect (client_secret_basic). */
  basicAuthorization: string
  /** CACHE_MAX_ENTRIES for the cache-full scenario, and how many distinct tokens it sends. */
  cacheEntries: number
  cacheFullRequests: number
}

/** Which server a scenario loads; each scenario gets a fresh process of it. */
export type ServerKind =
  /** bench/reference.ts without a database: constant answers, logger off (the floor). */
  | 'reference'
  /** The same with Fastify's logger at warn (an extra, labelled row; not a floor). */
  | 'reference-logger'
  /** bench/minimal.ts: client auth + digest + LRU hit, nothing else. */
  | 'minimal'
  /** bench/reference.ts with the bench database: one lookup per request. */
  | 'reference-pg'
  /** Tessera itself, `node dist/src/server.js`. */
  | 'tessera'
  /** bench/oidc-peer.ts: node-oidc-provider. */
  | 'oidc'

/** The part of the load that is the scenario's own; connections and durations come from the run. */
export type LoadPlan = Pick<LoadSpec, 'method' | 'path' | 'headers' | 'tokenIn' | 'token' | 'expect'> & { amount?: number }

export interface Scenario {
  name: string
  description: string
  server: ServerKind
  /** Settings for Tessera beyond the bench's common ones. */
  tesseraEnv?: (context: RunContext) => Record<string, string>
  /** Fail unless the server was asked about at least this many distinct tokens. */
  minDistinctTokens?: (context: RunContext) => number
  /** Read the server's memory again after this many idle seconds (what stays once the garbage is collected). */
  settleSeconds?: number
  /** `origin` is the running server's, for scenarios that must ask it something first. */
  load: (context: RunContext, origin: string) => Promise<LoadPlan>
}

const ACTIVE = '"active":true'

export const OIDC_PEER_CLIENT_ID = 'bench-peer'
export const OIDC_PEER_CLIENT_SECRET = 'bench-peer-secret-not-a-secret-0123456789'

export const SCENARIOS: Scenario[] = [
  {
    name: 'bare-post',
    description: 'Floor under introspection: bare Fastify 5 (logger off) + @fastify/formbody, form body validated by a schema, constant RFC 7662-shaped answer through a response schema; same Basic header and token as Tessera\'s caller.',
    server: 'reference',
    load: async (context) => ({ method: 'POST', path: '/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'bare-post-logger',
    description: 'Extra row, not a floor: bare-post with Fastify\'s logger at warn (a pino child logger per request), the floor earlier versions of this bench compared with.',
    server: 'reference-logger',
    load: async (context) => ({ method: 'POST', path: '/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'minimal-post',
    description: 'The necessary work of a cached introspection and nothing else: bare Fastify (logger off) + formbody + schemas, Basic caller checked against a cache of verified callers (keyed SHA-256), the token\'s keyed SHA-256, one lru-cache hit, the answer built from the record.',
    server: 'minimal',
    load: async (context) => ({ method: 'POST', path: '/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'minimal-get',
    description: 'The necessary work of a cached bearer route: bare Fastify (logger off), the bearer token\'s keyed SHA-256, one lru-cache hit, the answer built from the record.',
    server: 'minimal',
    load: async () => ({ method: 'GET', path: '/info', headers: {}, tokenIn: 'bearer', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'bare-get',
    description: 'Floor under the bearer routes: bare Fastify 5 (logger off), GET with a bearer header, constant answer through a response schema.',
    server: 'reference',
    load: async () => ({ method: 'GET', path: '/info', headers: {}, tokenIn: 'bearer', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'bare-pg',
    description: 'Floor under a cache miss: bare Fastify 5 (logger off) computing the HMAC digest and running Tessera\'s lookup statement (prepared, raw pg pool of Tessera\'s size) for a different seeded token on every request.',
    server: 'reference-pg',
    load: async (context) => ({ method: 'POST', path: '/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'cycle', count: context.tokens }, expect: ACTIVE })
  },
  {
    name: 'tessera-introspect-cached',
    description: 'Tessera POST /oauth/introspect, client_secret_basic caller (verified once, then cached), the same token on every request (warm token cache).',
    server: 'tessera',
    load: async (context) => ({ method: 'POST', path: '/oauth/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'tessera-token-info-cached',
    description: 'Tessera GET /oauth/token/info with the token as bearer, the same token on every request (warm cache).',
    server: 'tessera',
    load: async () => ({ method: 'GET', path: '/oauth/token/info', headers: {}, tokenIn: 'bearer', token: { kind: 'seeded', index: 0 }, expect: '"resource_owner_id":"' })
  },
  {
    name: 'tessera-verify-cached',
    description: 'Tessera GET /auth/verify (forward auth) with the token as bearer, the same token on every request (warm cache).',
    server: 'tessera',
    load: async () => ({ method: 'GET', path: '/auth/verify', headers: {}, tokenIn: 'bearer', token: { kind: 'seeded', index: 0 }, expect: ACTIVE })
  },
  {
    name: 'tessera-introspect-miss',
    description: 'Tessera POST /oauth/introspect with the token cache off (CACHE_MAX_ENTRIES=0) and a different seeded token on every request: every request reaches the database.',
    server: 'tessera',
    tesseraEnv: () => ({ CACHE_MAX_ENTRIES: '0' }),
    load: async (context) => ({ method: 'POST', path: '/oauth/introspect', headers: { authorization: context.basicAuthorization }, tokenIn: 'form', token: { kind: 'cycle', count: context.tokens }, expect: ACTIVE })
  },
  {
    name: 'tessera-cache-full',
    description: 'Tessera POST /oauth/introspect with the default cache, sent distinct seeded tokens until at least CACHE_MAX_ENTRIES were introspected (cache full); the figure that matters is the resident set afterwards.',
    server: 'tessera',
    tesseraEnv: (context) => ({ CACHE_MAX_ENTRIES: String(context.cacheEntries) }),
    settleSeconds: 5,
    minDistinctTokens: (context) => context.cacheEntries,
    load: async (context) => ({
      method: 'POST',
      path: '/oauth/introspect',
      headers: { authorization: context.basicAuthorization },
      tokenIn: 'form',
      token: { kind: 'cycle', count: context.tokens },
      expect: ACTIVE,
      amount: context.cacheFullRequests
    })
  },
  {
    name: 'oidc-provider',
    description: 'The peer: node-oidc-provider 9 (in-memory adapter), POST /token/introspection with client_secret_basic for one client_credentials access token.',
    server: 'oidc',
    load: async (_context, origin) => {
      const authorization = `Basic ${Buffer.from(`${OIDC_PEER_CLIENT_ID}:${OIDC_PEER_CLIENT_SECRET}`).toString('base64')}`
      const response = await fetch(`${origin}/token`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&scope=read%3Atokens'
      })
      const answer = await response.json() as { access_token?: string }
      if (response.status !== 200 || answer.access_token === undefined) throw new Error(`oidc-provider gave no access token: ${response.status} ${JSON.stringify(answer)}`)
      return { method: 'POST', path: '/token/introspection', headers: { authorization }, tokenIn: 'form', token: { kind: 'literal', value: answer.access_token }, expect: ACTIVE }
    }
  }
]
