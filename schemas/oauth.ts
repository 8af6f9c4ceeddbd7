import { Type } from 'typebox'
import { UnixSeconds } from './common.js'

export const MAX_TOKEN_LENGTH = 4096

/** Client credentials a form body may carry (RFC 6749 §2.3.1 client_secret_post). */
const ClientIdField = Type.String({ minLength: 1, maxLength: 255, description: 'client_secret_post' })
const ClientSecretField = Type.String({ minLength: 1, maxLength: 1024, description: 'client_secret_post' })

export const IntrospectBody = Type.Object({
  token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH, description: 'The token to ask about' }),
  token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token (other hints are ignored)' })),
  client_id: Type.Optional(ClientIdField),
  client_secret: Type.Optional(ClientSecretField)
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
  expires_in_seconds: Type.Union([Type.Integer(), Type.Null()], { description: 'Pre-5.x Doorkeeper name of `expires_in`' }),
  aud: Type.Optional(Type.Array(Type.String(), { description: 'The audiences the token is limited to; absent for an unrestricted token' }))
}, { $id: 'TokenInfo', title: 'TokenInfo', description: 'Doorkeeper-style token info' })

export const RevokeBody = Type.Object({
  token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH, description: 'The token to revoke' }),
  token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'access_token (other hints are ignored: every token is looked up the same way)' })),
  client_id: Type.Optional(ClientIdField),
  client_secret: Type.Optional(ClientSecretField)
})

export const TokenRequestBody = Type.Object({
  grant_type: Type.String({ minLength: 1, maxLength: 255, description: 'client_credentials (the only grant this server issues)' }),
  scope: Type.Optional(Type.String({ maxLength: 2048, description: 'Space-separated scopes, each one the application holds; absent or empty: all of them (never admin)' })),
  client_id: Type.Optional(ClientIdField),
  client_secret: Type.Optional(ClientSecretField)
})

export const TokenResponse = Type.Object({
  access_token: Type.String({ description: 'A Tessera token, shown once: opaque, or an RFC 9068 JWT for applications with token_format jwt; introspect it or send it as a bearer token' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the token expires' }),
  scope: Type.String({ description: 'The granted scopes, space-separated' })
}, { title: 'TokenResponse', description: 'RFC 6749 §5.1 successful token response' })

export const ServerMetadata = Type.Object({
  issuer: Type.String({ description: 'PUBLIC_URL: the `iss` of every token and introspection answer' }),
  token_endpoint: Type.String(),
  introspection_endpoint: Type.String(),
  revocation_endpoint: Type.String(),
  jwks_uri: Type.String({ description: 'The keys that verify JWT access tokens and signed introspection answers' }),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  introspection_endpoint_auth_methods_supported: Type.Array(Type.String({ description: 'A bearer token with the introspect scope is accepted too (RFC 8414 has no name for it)' })),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  grant_types_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String(), { description: 'Empty: there is no authorization endpoint' }),
  scopes_supported: Type.Array(Type.String()),
  introspection_signing_alg_values_supported: Type.Array(Type.String({ description: 'RFC 9701 §7: algorithms of signed introspection answers (Accept: application/token-introspection+jwt)' })),
  service_documentation: Type.String()
}, { title: 'AuthorizationServerMetadata', description: 'RFC 8414 §2 authorization server metadata' })

const PublishedKey = Type.Object({
  kty: Type.String({ description: 'EC' }),
  crv: Type.String({ description: 'P-256' }),
  x: Type.String(),
  y: Type.String(),
  kid: Type.String({ description: 'RFC 7638 thumbprint; the `kid` in the header of every JWT signed with this key' }),
  alg: Type.Literal('ES256'),
  use: Type.Literal('sig')
}, { title: 'JsonWebKey' })

export const KeySet = Type.Object({
  keys: Type.Array(PublishedKey, { description: 'The active key first, then retired keys whose tokens may still be alive' })
}, { title: 'JsonWebKeySet', description: 'RFC 7517 §5 JWK Set' })

/** RFC 7009 §2.2: the same empty 200 whether or not anything was revoked. */
export const RevocationAnswer = {
  description: 'Revoked, or nothing to revoke: the same empty answer either way (RFC 7009 §2.2)',
  content: { 'text/plain': { schema: Type.String({ maxLength: 0, description: 'Empty' }) } }
}

/** RFC 9701 §4: the media type a caller asks for to get a signed introspection answer. */
export const SIGNED_INTROSPECTION_TYPE = 'application/token-introspection+jwt'

export const IntrospectionAnswer = {
  description: 'The introspection answer, as JSON or (when asked for) as a signed JWT',
  content: {
    'application/json': { schema: { $ref: 'Introspection' } },
    [SIGNED_INTROSPECTION_TYPE]: { schema: { type: 'string', description: 'A compact JWS (RFC 9701)' } }
  }
}
