import { Type, type Static } from 'typebox'

/** Usernames: 1–40 ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const USERNAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'

/** The shortest password a user may be given (the API, the CLI and BOOTSTRAP_ADMIN_PASSWORD). */
export const MIN_PASSWORD_LENGTH = 8

/** RFC 9457 problem details: the one error shape of the REST API. */
export const Problem = Type.Object({
  type: Type.String({ description: 'A URI reference identifying the problem type (about:blank here; `code` is the precise identifier)' }),
  title: Type.String({ description: 'The HTTP status text' }),
  status: Type.Integer(),
  detail: Type.String({ description: 'What went wrong, for a human' }),
  code: Type.String({ description: 'Stable machine-readable error code, e.g. TESSERA_INVALID_SCOPE or FST_ERR_VALIDATION' }),
  instance: Type.Optional(Type.String({ description: 'The request id' })),
  errors: Type.Optional(Type.Array(Type.Object({
    path: Type.String(),
    message: Type.String()
  }), { description: 'Every validation failure, one per field' }))
}, { $id: 'Problem', title: 'Problem', description: 'RFC 9457 problem details (served as application/problem+json)' })
export type ProblemBody = Static<typeof Problem>

/** RFC 6749 §5.2 / RFC 6750 §3 error, used by the OAuth endpoints. */
export const OAuthError = Type.Object({
  error: Type.String({ description: 'invalid_request, invalid_client, invalid_token, insufficient_scope, …' }),
  error_description: Type.Optional(Type.String())
}, { $id: 'OAuthError', title: 'OAuthError' })
export type OAuthErrorBody = Static<typeof OAuthError>

export const ProblemRef = Type.Ref('Problem')
export const OAuthErrorRef = Type.Ref('OAuthError')

/** A problem response, documented (and serialised) under the media type it is served with. */
export interface ProblemResponse {
  description: string
  content: { 'application/problem+json': { schema: typeof ProblemRef } }
}

/** Standard problem responses to attach to a route's `response` map. */
export function problems (...statuses: number[]): Record<number, ProblemResponse> {
  return Object.fromEntries(statuses.map((status) => [status, {
    description: 'RFC 9457 problem details',
    content: { 'application/problem+json': { schema: ProblemRef } }
  }]))
}

export function oauthErrors (...statuses: number[]): Record<number, typeof OAuthErrorRef> {
  return Object.fromEntries(statuses.map((status) => [status, OAuthErrorRef]))
}

/** The body of a 204. */
export const NoContent = Type.Null()

export const UnixSeconds = Type.Integer({ description: 'Seconds since the Unix epoch' })
