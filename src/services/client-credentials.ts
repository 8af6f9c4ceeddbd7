import type { EntityManager } from '@mikro-orm/core'
import type { Application } from '../entities/application.js'
import { Errors } from '../errors.js'
import type { Actor } from './audit.js'
import { effectiveScopes, type ScopeCatalogue } from './scopes.js'
import { issueToken, type AccessTokenSigner, type PlaintextFactory, type TokenIssuerDeps } from './tokens.js'
import { JWT_TYPES } from './signing-keys.js'

/** The name every client_credentials token carries; names are unique per user only, and these have none. */
const CLIENT_TOKEN_NAME = 'client_credentials'

/** Scopes the client_credentials grant never issues: `admin` is a user's privilege, and a client has no user. */
const NEVER_GRANTED = new Set(['admin'])

/**
 * The scopes a client_credentials token gets (RFC 6749 §3.3): the requested ones, each of which
 * the application must hold (`read:X` counts as held with `write:X`, as everywhere else), or,
 * when none are requested, all of the application's scopes. Throws InvalidScope naming the
 * offending scope.
 */
export function resolveClientScopes (catalogue: ScopeCatalogue, application: Pick<Application, 'scopes'>, requested: string | undefined): string[] {
  const asked = (requested ?? '').split(' ').filter((scope) => scope !== '')
  if (asked.length === 0) {
    const all = application.scopes.filter((scope) => !NEVER_GRANTED.has(scope))
    if (all.length === 0) throw new Errors.InvalidScope('this application holds no scope the client_credentials grant can issue')
    return all
  }
  const unknown = asked.filter((scope) => !catalogue.has(scope))
  if (unknown.length > 0) throw new Errors.InvalidScope(`unknown scope${unknown.length > 1 ? 's' : ''} ${listOf(unknown)}`)
  const never = asked.filter((scope) => NEVER_GRANTED.has(scope))
  if (never.length > 0) throw new Errors.InvalidScope(`the ${listOf(never)} scope is never granted to a client: it belongs to users`)
  const held = new Set(effectiveScopes(application.scopes))
  const refused = asked.filter((scope) => !held.has(scope))
  if (refused.length > 0) throw new Errors.InvalidScope(`scope${refused.length > 1 ? 's' : ''} ${listOf(refused)} not allowed for this application`)
  return [...new Set(asked)]
}

/**
 * A value from the request as an error_description may echo it (RFC 6749 §5.2: printable ASCII
 * without `"` and `\`), cut short.
 */
export function printable (value: string): string {
  return value.slice(0, 64).replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?')
}

function listOf (scopes: string[]): string {
  return [...new Set(scopes)].map(printable).join(', ')
}

/** RFC 6749 §5.1 successful token response. */
export interface ClientTokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  scope: string
}

export interface ClientTokenRequest {
  application: Application
  scopes: string[]
  /** Seconds. */
  lifetime: number
  actor: Actor
}

/**
 * Issues an application's own token (no user) in `em`'s current transaction, with its
 * `token.created` audit event. This is the one place a client_credentials token is minted:
 * for applications with `token_format: 'jwt'` the plaintext is a signed RFC 9068 JWT, still
 * backed by its row (stored by digest like any token), so revocation, listings and audit work.
 */
export async function issueClientToken (em: EntityManager, deps: TokenIssuerDeps, request: ClientTokenRequest): Promise<ClientTokenResponse> {
  const { application, scopes, lifetime, actor } = request
  let plaintext: PlaintextFactory | undefined
  let now: Date | undefined
  if (application.tokenFormat === 'jwt') {
    if (deps.signer === undefined) throw new Errors.SigningKeyMissing()
    plaintext = jwtAccessToken(deps.signer, application.clientId)
    // Whole seconds, so the row's expiry is exactly the JWT's `exp`.
    now = new Date(Math.floor(Date.now() / 1000) * 1000)
  }
  const issued = await issueToken(em, deps, {
    owner: null,
    application,
    input: { name: CLIENT_TOKEN_NAME, scopes, expires_in: lifetime },
    actor,
    ...(now !== undefined ? { now } : {}),
    ...(plaintext !== undefined ? { plaintext } : {})
  })
  return { access_token: issued.plaintext, token_type: 'Bearer', expires_in: lifetime, scope: scopes.join(' ') }
}

/**
 * An RFC 9068 access token for an application's own token: `sub` is the client (there is no
 * user), `aud` the token's audience list or, without one, this server (introspection is where
 * such a token is checked), `jti` the row id.
 */
function jwtAccessToken (signer: AccessTokenSigner, clientId: string): PlaintextFactory {
  return (token) => signer.sign(JWT_TYPES.accessToken, {
    iss: signer.issuer,
    sub: clientId,
    aud: token.audience ?? signer.issuer,
    ...(token.expiresAt !== null ? { exp: Math.floor(token.expiresAt.getTime() / 1000) } : {}),
    iat: Math.floor(token.createdAt.getTime() / 1000),
    jti: token.id,
    client_id: clientId,
    scope: token.scopes.join(' ')
  })
}

/**
 * The lifetime of a client_credentials token: the configured one, never beyond the maximum any
 * token may have (0: no maximum), so a lower TOKEN_MAX_LIFETIME cannot make every request fail.
 */
export function clientTokenLifetime (configured: number, maxLifetime: number): number {
  return maxLifetime > 0 ? Math.min(configured, maxLifetime) : configured
}
