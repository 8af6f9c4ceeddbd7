import { Type, type TSchema } from 'typebox'

/** Items per page of every listing when `limit` is not given, and the most a caller may ask for. */
export const DEFAULT_PAGE_SIZE = 20
export const MAX_PAGE_SIZE = 80

const Id = Type.String({ format: 'uuid', description: 'A time-sortable id (UUIDv7)' })
const Limit = Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE, description: `Items per page (1–${MAX_PAGE_SIZE})` })

/** Keyset pagination (GoToSocial / Mastodon semantics); the Link header carries next and prev. */
export const KeysetQuery = Type.Object({
  max_id: Type.Optional({ ...Id, description: 'Only items older than this id (next page)' }),
  since_id: Type.Optional({ ...Id, description: 'Only items newer than this id (the newest ones)' }),
  min_id: Type.Optional({ ...Id, description: 'Only items newer than this id, the ones right after it (previous page)' }),
  limit: Type.Optional(Limit)
})

/** Forgejo-compatible pagination; X-Total-Count and Link (first, prev, next, last). */
export const PageQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, default: 1, description: 'Page number, from 1' })),
  limit: Type.Optional(Limit)
})

const DateTime = Type.String({ format: 'date-time' })

export const TokenFilterQuery = Type.Object({
  state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('all')], { description: 'Only tokens in this state' })),
  q: Type.Optional(Type.String({ maxLength: 100, description: 'Name contains (case-insensitive)' })),
  created_before: Type.Optional(DateTime),
  created_after: Type.Optional(DateTime),
  last_used_before: Type.Optional(DateTime),
  last_used_after: Type.Optional(DateTime),
  expires_before: Type.Optional(DateTime),
  expires_after: Type.Optional(DateTime)
})

export function Nullable<T extends TSchema> (schema: T) {
  return Type.Union([schema, Type.Null()])
}

export const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(Type.String(), { description: 'As granted' }),
  scope: Type.String({ description: 'As granted, space-separated (GoToSocial\'s field)' }),
  effective_scopes: Type.Array(Type.String(), { description: 'As granted plus implied (write:X ⇒ read:X)' }),
  audience: Nullable(Type.Array(Type.String())),
  application: Type.Object({ name: Type.String(), client_id: Type.String() }),
  owner: Nullable(Type.Object({ id: Type.String(), username: Type.String() })),
  token_last_eight: Type.String(),
  state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')]),
  created_at: DateTime,
  created_by: Nullable(Type.String({ description: 'Id of the user who issued it' })),
  expires_at: Nullable(DateTime),
  revoked_at: Nullable(DateTime),
  last_used: Nullable({ ...DateTime, description: 'Approximate (buffered; about a minute)' }),
  last_used_at: Nullable(DateTime),
  last_used_ip: Nullable(Type.String()),
  rotated_from: Nullable(Type.String())
}, { $id: 'TokenView', title: 'TokenView', description: 'A token as listings show it; never its secret' })

/** GET /api/v1/tokens: your own tokens, keyset-paginated, revoked ones only when `state` asks. */
export const OwnTokensQuery = Type.Object({ ...KeysetQuery.properties, state: TokenFilterQuery.properties.state })

/** GET /api/v1/users/{username}/tokens: Forgejo's page/limit, revoked ones only when `state` asks. */
export const UserTokensQuery = Type.Object({ ...PageQuery.properties, state: TokenFilterQuery.properties.state })

/** GET /api/v1/admin/users/{username}/tokens: page/limit and GitLab's filters. */
export const AdminTokensQuery = Type.Object({ ...PageQuery.properties, ...TokenFilterQuery.properties })

export const TokenViewList = Type.Array(Type.Ref('TokenView'))
