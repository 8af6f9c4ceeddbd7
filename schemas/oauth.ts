import { Type } from 'typebox'
import { UnixSeconds } from './common.js'

export const MAX_TOKEN_LENGTH = 4096

export const IntrospectBody = Type.Object({
  token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH, description: 'The token to ask about' }),
  token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token (other hints are ignored)' })),
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'client_secret_post' })),
  client_secret: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'client_secret_post' }))
})

export const Introspection = Type.Object({
  active: Type.Boolean(),
  scope: Type.Optional(Type.String({ description: 'Effective scopes, space-separated (implied read:X included)' })),
  client_id: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  token_type: Type.Optional(Type.String()),
  exp: Type.Optional(UnixSeconds),
  iat: Type.Optional(UnixSeconds),
  nbf: Type.Optional(UnixSeconds),
  sub: Type.Optional(Type.String({ description: 'The owner\'s user id, or the client_id for an application\'s own token' })),
  aud: Type.Optional(Type.Array(Type.String())),
  iss: Type.Optional(Type.String()),
  jti: Type.Optional(Type.String({ description: 'The token id' }))
}, {
  $id: 'Introspection',
  title: 'Introspection',
  description: 'RFC 7662 §2.2. Inactive tokens of every kind are exactly {"active": false}; absent fields are left out, never null.'
})

export const TokenInfo = Type.Object({
  resource_owner_id: Type.Union([Type.String(), Type.Null()]),
  scope: Type.Array(Type.String()),
  expires_in: Type.Union([Type.Integer(), Type.Null()], { description: 'Seconds left; null for a token that never expires' }),
  application: Type.Object({ uid: Type.String({ description: 'client_id' }) }),
  created_at: UnixSeconds,
  scopes: Type.Array(Type.String(), { description: 'Pre-5.x Doorkeeper name of `scope`' }),
  expires_in_seconds: Type.Union([Type.Integer(), Type.Null()], { description: 'Pre-5.x Doorkeeper name of `expires_in`' })
}, { $id: 'TokenInfo', title: 'TokenInfo', description: 'Doorkeeper-style token info' })
