import { Type } from 'typebox'
import { KeysetQuery, Nullable, PageQuery } from './listing.js'
import { MIN_PASSWORD_LENGTH, USERNAME_PATTERN } from './common.js'

const DateTime = Type.String({ format: 'date-time' })
const Email = Type.String({ format: 'email', maxLength: 254 })
const Password = Type.String({ minLength: MIN_PASSWORD_LENGTH, maxLength: 1024 })

export const UserView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  email: Nullable(Type.String()),
  admin: Type.Boolean(),
  suspended: Type.Boolean(),
  suspended_at: Nullable(DateTime),
  created_at: DateTime
}, { $id: 'UserView', title: 'UserView' })

export const CreateUserBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 40, pattern: USERNAME_PATTERN, description: '1–40 ASCII letters, digits, ".", "_", "-", starting with a letter or digit; unique case-insensitively' }),
  email: Type.Optional(Nullable(Email)),
  password: Type.Optional(Nullable({ ...Password, description: 'Omit for a bot account that only uses tokens' })),
  admin: Type.Optional(Type.Boolean({ default: false }))
}, { additionalProperties: false })

export const UpdateUserBody = Type.Object({
  suspended: Type.Optional(Type.Boolean({ description: 'Suspending makes every token of the user inactive at once' })),
  admin: Type.Optional(Type.Boolean()),
  password: Type.Optional(Nullable({ ...Password, description: 'null removes the password' })),
  email: Type.Optional(Nullable(Email))
}, { additionalProperties: false, minProperties: 1 })

export const UserListQuery = Type.Object({
  ...PageQuery.properties,
  q: Type.Optional(Type.String({ maxLength: 40, description: 'Username contains (case-insensitive)' })),
  state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('all')])),
  admin: Type.Optional(Type.Boolean()),
  created_before: Type.Optional(DateTime),
  created_after: Type.Optional(DateTime)
})

export const UserTokenParams = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 40, pattern: USERNAME_PATTERN }),
  token: Type.String({ minLength: 1, maxLength: 100, description: 'A token id, or else a token name' })
})

const RedirectUri = Type.String({ minLength: 1, maxLength: 2000, description: 'An absolute URI without a fragment' })
const AudienceList = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 50 })
const IntrospectionScopes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50, description: 'Limit introspection to tokens carrying one of these scopes; empty or null: no limit' })
const TokenFormat = Type.Union([Type.Literal('opaque'), Type.Literal('jwt')], { description: 'Format of the tokens the application obtains from /oauth/token' })

export const ApplicationView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  client_id: Type.String(),
  confidential: Type.Boolean(),
  redirect_uris: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  introspection_audiences: Nullable(Type.Array(Type.String())),
  introspection_scopes: Nullable(Type.Array(Type.String(), { description: 'Only tokens carrying one of these scopes introspect as active to this application' })),
  token_format: TokenFormat,
  internal: Type.Boolean({ description: 'The built-in first-party application that owns personal tokens' }),
  created_at: DateTime
}, { $id: 'ApplicationView', title: 'ApplicationView' })

export const ApplicationWithSecret = Type.Object({
  ...ApplicationView.properties,
  client_secret: Nullable(Type.String({ description: 'Shown once; null for public clients' }))
}, { $id: 'ApplicationWithSecret', title: 'ApplicationWithSecret' })

export const CreateApplicationBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  scopes: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50, description: 'Scopes the application may hold or request' }),
  confidential: Type.Optional(Type.Boolean({ default: true, description: 'Confidential clients get a secret; public ones do not' })),
  redirect_uris: Type.Optional(Type.Array(RedirectUri, { maxItems: 20 })),
  introspection_audiences: Type.Optional(Nullable(AudienceList)),
  introspection_scopes: Type.Optional(Nullable(IntrospectionScopes)),
  token_format: Type.Optional(TokenFormat)
}, { additionalProperties: false })

export const UpdateApplicationBody = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 })),
  redirect_uris: Type.Optional(Type.Array(RedirectUri, { maxItems: 20 })),
  introspection_audiences: Type.Optional(Nullable(AudienceList)),
  introspection_scopes: Type.Optional(Nullable(IntrospectionScopes)),
  token_format: Type.Optional(TokenFormat)
}, { additionalProperties: false, minProperties: 1 })

export const ApplicationParams = Type.Object({ id: Type.String({ format: 'uuid' }) })

export const ApplicationSecret = Type.Object({
  client_id: Type.String(),
  client_secret: Type.String({ description: 'Shown once' })
})

export const AuditEventView = Type.Object({
  id: Type.String(),
  created_at: DateTime,
  actor: Type.String(),
  actor_id: Nullable(Type.String()),
  action: Type.String(),
  target_type: Nullable(Type.String()),
  target_id: Nullable(Type.String()),
  target: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  details: Nullable(Type.Record(Type.String(), Type.Unknown()))
}, { $id: 'AuditEventView', title: 'AuditEventView' })

const AuditQuery = Type.Object({
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Actor label (username, client:<id>, cli, system) or actor id' })),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Target id or label' })),
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 50, pattern: '^[a-z_]+(\\.[a-z_]+|\\.\\*)?$', description: 'An action (token.revoked) or a family (token.*)' })),
  created_after: Type.Optional(DateTime),
  created_before: Type.Optional(DateTime)
})

export const TokenValues = Type.Object({
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'One token value' })),
  tokens: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 100, description: 'Several token values' }))
}, { additionalProperties: false })

const TokenLookupResult = Type.Object({
  token_last_eight: Type.String({ description: 'Last eight characters of the value given, to match results to inputs' }),
  found: Type.Boolean(),
  active: Type.Boolean({ description: 'Whether the token would introspect as active now' }),
  reason: Nullable(Type.String({ description: 'malformed, unknown, expired, revoked, owner_suspended' })),
  token: Nullable(Type.Ref('TokenView'))
})

const TokenRevokeResult = Type.Object({
  token_last_eight: Type.String(),
  result: Type.Union([Type.Literal('revoked'), Type.Literal('already_revoked'), Type.Literal('unknown'), Type.Literal('malformed')]),
  token_id: Nullable(Type.String()),
  owner: Nullable(Type.String())
})

/** GET /api/v1/admin/audit: keyset pagination and the filters. */
export const AuditListQuery = Type.Object({ ...KeysetQuery.properties, ...AuditQuery.properties })

export const UserViewList = Type.Array(Type.Ref('UserView'))
export const ApplicationViewList = Type.Array(Type.Ref('ApplicationView'))
export const AuditEventViewList = Type.Array(Type.Ref('AuditEventView'))
export const TokenLookupResults = Type.Array(TokenLookupResult)
export const TokenRevokeResults = Type.Array(TokenRevokeResult)
