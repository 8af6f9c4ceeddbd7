import createError from '@fastify/error'

/**
 * Named error codes, one per thing that can go wrong, with the message template in one place.
 * The error handler (plugins/app/error-handler.ts) maps them to problem+json, or to RFC 6749
 * errors on OAuth routes. A 5xx message never reaches the client.
 */
export const Errors = {
  BadRequest: createError('TESSERA_BAD_REQUEST', '%s', 400),
  Unauthorized: createError('TESSERA_UNAUTHORIZED', '%s', 401),
  Forbidden: createError('TESSERA_FORBIDDEN', '%s', 403),
  NotFound: createError('TESSERA_NOT_FOUND', '%s', 404),
  Conflict: createError('TESSERA_CONFLICT', '%s', 409),
  Unprocessable: createError('TESSERA_UNPROCESSABLE', '%s', 422),
  InvalidScope: createError('TESSERA_INVALID_SCOPE', '%s', 400),
  BasicAuthDisabled: createError('TESSERA_BASIC_AUTH_DISABLED',
    'Basic authentication is disabled on this server; an administrator creates tokens through the admin API', 403),
  InternalApplicationMissing: createError('TESSERA_INTERNAL_APP_MISSING',
    'the built-in first-party application "internal" is missing; an operator must run `tessera ensure-internal-app`', 503),
  SigningKeyMissing: createError('TESSERA_SIGNING_KEY_MISSING', 'no signing key is loaded yet; the service creates one at start', 503),
  SigningKeyUnreadable: createError('TESSERA_SIGNING_KEY_UNREADABLE', '%s', 500),
  DatabaseUnavailable: createError('TESSERA_DATABASE_UNAVAILABLE', 'the database is unavailable; try again shortly', 503)
} as const

/** WWW-Authenticate challenge to send with a 401, when the error carries one. */
export interface ChallengeError extends Error {
  challenge?: string
}

export function withChallenge<T extends Error> (error: T, challenge: string): T & ChallengeError {
  return Object.assign(error, { challenge })
}
