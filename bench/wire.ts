/**
 * The request and answer schemas the floor (bench/reference.ts) and the minimal implementation
 * (bench/minimal.ts) share: the RFC 7662 fields Tessera answers with, and a form body `token`.
 * Compiled to dist/bench/ beside them (bench/build.ts).
 */
export const Introspection = {
  type: 'object',
  properties: {
    active: { type: 'boolean' },
    scope: { type: 'string' },
    client_id: { type: 'string' },
    username: { type: 'string' },
    token_type: { type: 'string' },
    exp: { type: 'integer' },
    iat: { type: 'integer' },
    sub: { type: 'string' },
    aud: { type: 'array', items: { type: 'string' } },
    iss: { type: 'string' }
  },
  required: ['active']
} as const

export const IntrospectBody = {
  type: 'object',
  properties: { token: { type: 'string', minLength: 1, maxLength: 4096 } },
  required: ['token']
} as const
