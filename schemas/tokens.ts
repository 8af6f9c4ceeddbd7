import { Type } from 'typebox'
import { USERNAME_PATTERN } from './common.js'

export const Username = Type.String({ minLength: 1, maxLength: 40, pattern: USERNAME_PATTERN, description: 'Case-insensitive username' })

export const UsernameParams = Type.Object({ username: Username })

export const ScopeList = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  minItems: 1,
  maxItems: 50,
  description: 'Scopes to grant; unknown scopes are refused with the list of valid ones'
})

export const Audience = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
  maxItems: 20,
  description: 'Resources the token is limited to; absent or empty means unrestricted'
})

export const CreateTokenBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100, description: 'Unique among the owner\'s live tokens; NFC-normalised, trimmed, and refused (400) with control or invisible formatting characters (bidi overrides, zero-width)' }),
  scopes: ScopeList,
  audience: Type.Optional(Type.Union([Audience, Type.Null()])),
  expires_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'RFC 3339 expiry; null for a token that never expires (only when no maximum lifetime is configured)'
  })),
  expires_in: Type.Optional(Type.Integer({ minimum: 1, maximum: 315360000, description: 'Lifetime in seconds' }))
}, { additionalProperties: false })

export const CreatedToken = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  sha1: Type.String({ description: 'The plaintext token (Forgejo\'s field name); shown once' }),
  token: Type.String({ description: 'The plaintext token; shown once' }),
  token_last_eight: Type.String(),
  scopes: Type.Array(Type.String(), { description: 'As granted' }),
  audience: Type.Union([Type.Array(Type.String()), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
}, { $id: 'CreatedToken', title: 'CreatedToken' })

export const TokenIdParams = Type.Object({ id: Type.String({ format: 'uuid', description: 'The token id' }) })

/** The rotation's body: the grace period, at most TOKEN_ROTATION_MAX_GRACE seconds. */
export function RotateBody (maxGrace: number) {
  return Type.Object({
    grace_period: Type.Optional(Type.Integer({ minimum: 0, maximum: maxGrace, description: 'Seconds the old token keeps working' }))
  }, { additionalProperties: false })
}
