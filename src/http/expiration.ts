/**
 * `Tessera-Token-Expiration`: when the bearer token of the request expires, on every answer to a
 * request it authenticated (token/info, /auth/verify, the REST API), so that a client sees the
 * end coming instead of meeting a bare 401 (GitHub's GitHub-Authentication-Token-Expiration).
 */
export const EXPIRATION_HEADER = 'tessera-token-expiration'

/** The format GitHub uses for `GitHub-Authentication-Token-Expiration`: `2026-01-31 08:00:00 UTC`. */
export function expirationHeader (expiresAt: number): string {
  return new Date(expiresAt).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC')
}
