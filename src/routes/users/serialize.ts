import type { IssuedToken } from '../../services/tokens.js'

/** The one-time answer to a token creation: the plaintext under `token` and Forgejo's `sha1`. */
export function serializeCreatedToken ({ token, plaintext }: IssuedToken) {
  return {
    id: token.id,
    name: token.name,
    sha1: plaintext,
    token: plaintext,
    token_last_eight: token.lastEight,
    scopes: token.scopes,
    audience: token.audience ?? null,
    created_at: token.createdAt.toISOString(),
    expires_at: token.expiresAt?.toISOString() ?? null
  }
}
