import type { TokenRecord } from './token-cache.js'

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

/**
 * Whether a caller limited to `audiences` may see `record`: a token restricted to other
 * audiences is hidden from it; an unrestricted token is usable everywhere, so it is visible.
 */
export function visibleTo (record: TokenRecord, audiences: string[] | null): boolean {
  if (audiences === null || record.audience === null) return true
  return record.audience.some((entry) => audiences.includes(entry))
}

/** RFC 7662 §2.2 answer for an active token (fields that do not apply are left out, never null). */
export function introspectionResponse (record: TokenRecord, issuer: string, callerAudiences: string[] | null = null): IntrospectionBody {
  if (!visibleTo(record, callerAudiences)) return INACTIVE
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
