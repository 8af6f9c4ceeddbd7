import type { TokenRecord } from './token-resolver.js'

export const INACTIVE = Object.freeze({ active: false as const })

export interface IntrospectionBody {
  active: boolean
  scope?: string
  client_id?: string
  username?: string
  token_type?: string
  exp?: number
  iat?: number
  nbf?: number
  sub?: string
  aud?: string[]
  iss?: string
  jti?: string
}

/** What a calling application may see: null means no limit. */
export interface IntrospectionPolicy {
  audiences: string[] | null
  scopes: string[] | null
}

const UNLIMITED: IntrospectionPolicy = { audiences: null, scopes: null }

/**
 * Whether a caller limited by `policy` may see `record`. Audiences: a token restricted to other
 * audiences is hidden; an unrestricted token is usable everywhere, so it is visible. Scopes: the
 * token must carry (effectively) at least one of the caller's scopes.
 */
export function visibleTo (record: TokenRecord, policy: IntrospectionPolicy = UNLIMITED): boolean {
  const { audiences, scopes } = policy
  if (audiences !== null && record.audience !== null && !record.audience.some((entry) => audiences.includes(entry))) return false
  if (scopes !== null && !record.effectiveScope.split(' ').some((scope) => scopes.includes(scope))) return false
  return true
}

/** RFC 7662 §2.2 answer for an active token the caller may see (fields that do not apply are left out, never null). */
export function introspectionResponse (record: TokenRecord, issuer: string): IntrospectionBody {
  const body: IntrospectionBody = {
    active: true,
    scope: record.effectiveScope,
    client_id: record.clientId,
    token_type: 'Bearer',
    iat: record.createdAt,
    nbf: record.createdAt,
    sub: record.userId ?? record.clientId,
    iss: issuer,
    jti: record.id
  }
  if (record.username !== null) body.username = record.username
  if (record.expiresAt !== null) body.exp = Math.floor(record.expiresAt / 1000)
  if (record.audience !== null) body.aud = record.audience
  return body
}
