import { Type } from 'typebox'

/** Most distinct scopes one check may require: a gateway needs a few, never dozens. */
export const MAX_REQUIRED_SCOPES = 20

const Audience = Type.String({ minLength: 1, maxLength: 255, pattern: '^[^\\u0000-\\u001f\\u007f]+$' })

export const VerifyQuery = Type.Object({
  scope: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), {
    maxItems: MAX_REQUIRED_SCOPES,
    description: 'A scope the token must carry (implied ones count: `write:X` satisfies `read:X`). Repeat it, or list several separated by spaces: every one is required.'
  })),
  audience: Type.Optional(Type.String({ ...Audience, description: 'An audience the token must be valid for: a token restricted to audiences must list it; an unrestricted token passes.' }))
}, { additionalProperties: false })

/**
 * Envoy's HTTP ext_authz appends the original path and query to its `path_prefix`, so on
 * `/auth/verify/{original path}` the query belongs to the client; the gateway states its
 * requirements in headers it adds to the check instead.
 */
export const RequirementHeaders = Type.Object({
  'tessera-require-scope': Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  'tessera-require-audience': Type.Optional(Audience)
})

export const Verified = Type.Object({
  active: Type.Literal(true)
}, { description: 'The token is active and meets the requirements; the answer is in the headers.' })
