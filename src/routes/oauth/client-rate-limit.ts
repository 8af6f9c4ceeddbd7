import { callerRateLimitKey } from '../../http/credentials.js'

/**
 * Requests per client and minute on the token and revocation endpoints. Fixed and generous: a
 * well-behaved client asks for a token once per lifetime (an hour by default), so this only
 * stops a runaway loop from filling the token table and the audit log.
 */
const CLIENT_REQUESTS_PER_MINUTE = 600

/**
 * The rate limit of the client-authenticated endpoints (token, revoke): per claimed client,
 * applied after body parsing so a client_secret_post caller is keyed by the client_id in the form.
 */
export const CLIENT_RATE_LIMIT = {
  hook: 'preValidation' as const,
  max: CLIENT_REQUESTS_PER_MINUTE,
  timeWindow: 60_000,
  keyGenerator: callerRateLimitKey
}
