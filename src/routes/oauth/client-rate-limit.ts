/**
 * Requests per client and minute on the token and revocation endpoints. Fixed and generous: a
 * well-behaved client asks for a token once per lifetime (an hour by default), so this only
 * stops a runaway loop from filling the token table and the audit log.
 *
 * Counted once the caller is authenticated, under the client it proved to be (or, for a holder
 * revoking its own token, its address): counting under the client_id a request merely claims let
 * anyone who knew the id — ids are public — spend the client's allowance with wrong secrets.
 * Failed authentications have their own limits (plugins/app/authentication.ts).
 */
export const CLIENT_RATE_LIMIT = {
  max: 600,
  timeWindow: 60_000,
  message: 'rate limit exceeded for this client'
}
