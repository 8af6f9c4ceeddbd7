import type { Challenge } from '../errors.js'

/** The protection space of every challenge (RFC 7235 §2.2). */
const REALM = 'tessera'

/** RFC 7235 quoted-string content, kept to printable ASCII: no quote, no backslash, no control character. */
function quoted (value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '')
}

/**
 * The `WWW-Authenticate` value of a challenge: `Basic realm="tessera", charset="UTF-8"`
 * (RFC 7617 §2.1), or `Bearer realm="tessera"` with, when credentials were sent and refused,
 * `error`, `error_description` and, for insufficient_scope, `scope` (RFC 6750 §3).
 */
export function formatChallenge (challenge: Challenge): string {
  if (challenge.scheme === 'Basic') return `Basic realm="${REALM}", charset="UTF-8"`
  let value = `Bearer realm="${REALM}"`
  if (challenge.error === undefined) return value
  value += `, error="${challenge.error}"`
  if (challenge.description !== undefined) value += `, error_description="${quoted(challenge.description)}"`
  if (challenge.scope !== undefined) value += `, scope="${quoted(challenge.scope)}"`
  return value
}
