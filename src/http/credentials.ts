import type { FastifyRequest } from 'fastify'

/** An Authorization header, parsed (RFC 7617 Basic, RFC 6750 Bearer). */
export type Authorization =
  | { scheme: 'basic', username: string, password: string }
  | { scheme: 'bearer', token: string }
  | { scheme: 'unsupported' }
  | { scheme: 'malformed' }

/** Parses an Authorization header; null when there is none. */
export function parseAuthorization (header: string | undefined): Authorization | null {
  if (header === undefined || header === '') return null
  const space = header.indexOf(' ')
  if (space < 0) return { scheme: 'malformed' }
  const scheme = header.slice(0, space).toLowerCase()
  const value = header.slice(space + 1).trim()
  if (scheme === 'bearer') return value === '' || value.includes(' ') ? { scheme: 'malformed' } : { scheme: 'bearer', token: value }
  if (scheme !== 'basic') return { scheme: 'unsupported' }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return { scheme: 'malformed' }
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return { scheme: 'malformed' }
  return { scheme: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** See authorizationOf(); decorated by plugins/app/authentication.ts. */
    parsedAuthorization: { header: string | undefined, value: Authorization | null } | null
  }
}

/**
 * The request's Authorization header, parsed once per request (several steps of the hot path
 * need it).
 */
export function authorizationOf (request: FastifyRequest): Authorization | null {
  const header = request.headers.authorization
  const memo = request.parsedAuthorization
  if (memo != null && memo.header === header) return memo.value
  const value = parseAuthorization(header)
  request.parsedAuthorization = { header, value }
  return value
}

/** RFC 6749 §2.3.1: client credentials in Basic are form-urlencoded before base64. */
export function formDecode (value: string): string | null {
  // Generated client ids and secrets carry neither: skip the regular expression and the decoder.
  if (!value.includes('%') && !value.includes('+')) return value
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

/** The client credentials a form body may carry (client_secret_post). */
export interface ClientCredentialFields {
  client_id?: string
  client_secret?: string
}

/**
 * The client_id a request names, before any check: the form-decoded Basic user name, else the
 * form's client_id when there is no Authorization header; null when it names none.
 */
export function claimedClientId (request: FastifyRequest, body: ClientCredentialFields | undefined): string | null {
  const authorization = authorizationOf(request)
  if (authorization?.scheme === 'basic') return formDecode(authorization.username)
  return authorization === null && typeof body?.client_id === 'string' ? body.client_id : null
}
