import createError from '@fastify/error'

/**
 * Every failure Tessera can answer, one named error each (made with @fastify/error, as
 * @fastify/jwt and Fastify itself do), with its message in one place. Each carries what the
 * error handler needs to write it on the wire (src/http/error-reply.ts): its HTTP status, the
 * RFC 6749 §5.2 / RFC 6750 §3.1 `error` code an OAuth route answers with, and the
 * `WWW-Authenticate` challenge that goes with a 401 (or an insufficient_scope 403).
 * Nothing is attached at the throw site. A 5xx message never reaches the client unless the
 * error says it was written for the client (`exposed`).
 */

/** RFC 6749 §5.2 and RFC 6750 §3.1 error codes (plus two for statuses neither defines). */
export type OAuthErrorCode =
  | 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client' | 'unsupported_grant_type' | 'invalid_scope'
  | 'invalid_token' | 'insufficient_scope'
  | 'server_error' | 'temporarily_unavailable' | 'rate_limited'

/**
 * A `WWW-Authenticate` challenge (RFC 7235 §4.1). Basic is always bare; a Bearer challenge
 * without `error` is the RFC 6750 §3.1 answer to a request that carried no bearer credentials.
 */
export interface Challenge {
  scheme: 'Basic' | 'Bearer'
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope'
  description?: string
  /** RFC 6750 §3: the scope the resource needs, with insufficient_scope. */
  scope?: string
}

/** What every Tessera error carries besides @fastify/error's code, message and statusCode. */
export interface TesseraError extends Error {
  code: string
  statusCode: number
  oauthError?: OAuthErrorCode
  challenge?: Challenge
  /** A 5xx whose message was written for the client and is safe to show. */
  exposed?: boolean
  /** Seconds after which a retry may succeed: sent as Retry-After (a 429, a 503). */
  retryAfter?: number
}

interface Wire<A extends unknown[]> {
  oauth?: OAuthErrorCode
  /** The challenge, fixed or made from the error's arguments. */
  challenge?: Challenge | ((...args: A) => Challenge)
  exposed?: boolean
  retryAfter?: number
}

export type TesseraErrorConstructor<A extends unknown[]> = new (...args: A) => TesseraError

const BASIC: Challenge = { scheme: 'Basic' }
const BEARER: Challenge = { scheme: 'Bearer' }
const INVALID_TOKEN: Challenge = { scheme: 'Bearer', error: 'invalid_token', description: 'The access token is invalid' }

/** A named error: `message` is a util.format template filled from the constructor's arguments. */
function define<A extends unknown[] = []> (code: string, message: string, status: number, wire: Wire<A> = {}): TesseraErrorConstructor<A> {
  const Base = createError(code, message, status) as unknown as new (...args: unknown[]) => TesseraError
  const { challenge } = wire
  // util.format appends arguments beyond the template's: those only the challenge uses stay out.
  const placeholders = message.match(/%[sdifjoO]/g)?.length ?? 0
  class Named extends Base {
    constructor (...args: A) {
      super(...args.slice(0, placeholders))
      if (typeof challenge === 'function') this.challenge = challenge(...args)
    }
  }
  Object.defineProperty(Named, 'name', { value: code })
  const prototype = Named.prototype as TesseraError
  if (wire.oauth !== undefined) prototype.oauthError = wire.oauth
  if (challenge !== undefined && typeof challenge !== 'function') prototype.challenge = challenge
  if (wire.exposed === true) prototype.exposed = true
  if (wire.retryAfter !== undefined) prototype.retryAfter = wire.retryAfter
  return Named
}

export const Errors = {
  // --- Bearer tokens (the one bearer step, plugins/app/bearer.ts) ---------------------------
  /** No Authorization header: RFC 6750 §3.1 asks for a bare challenge. */
  TokenRequired: define<[what: string]>('TESSERA_TOKEN_REQUIRED', 'this route needs %s in the Authorization header', 401,
    { oauth: 'invalid_token', challenge: BEARER }),
  /** Credentials of another scheme (Basic, Token…) where only a bearer token is accepted. */
  BearerSchemeRequired: define('TESSERA_BEARER_SCHEME_REQUIRED', 'this route accepts only a bearer token (Authorization: Bearer …), not another scheme', 401,
    { oauth: 'invalid_token', challenge: BEARER }),
  MalformedAuthorization: define('TESSERA_MALFORMED_AUTHORIZATION', 'the Authorization header is malformed', 401,
    { oauth: 'invalid_token', challenge: { scheme: 'Bearer', error: 'invalid_token', description: 'The Authorization header is malformed' } }),
  InvalidToken: define('TESSERA_INVALID_TOKEN', 'the access token is invalid, expired or revoked', 401,
    { oauth: 'invalid_token', challenge: INVALID_TOKEN }),
  InsufficientScope: define<[scope: string]>('TESSERA_INSUFFICIENT_SCOPE', 'the token lacks the %s scope', 403, {
    oauth: 'insufficient_scope',
    challenge: (scope) => ({ scheme: 'Bearer', error: 'insufficient_scope', description: `Requires the ${scope} scope`, scope })
  }),
  TokenWithoutUser: define('TESSERA_TOKEN_WITHOUT_USER', 'this route needs a token that belongs to a user', 403),
  TokenOfAnotherUser: define<[username: string]>('TESSERA_TOKEN_OF_ANOTHER_USER', 'the token does not belong to %s', 403),
  NotAdministrator: define<[username: string]>('TESSERA_NOT_ADMINISTRATOR', '%s is not an administrator', 403),
  TokenCannotMintTokens: define<[hint: string]>('TESSERA_TOKEN_CANNOT_MINT', 'a token cannot create tokens: %s', 403),
  MetricsTokenRequired: define('TESSERA_METRICS_TOKEN_REQUIRED', 'GET /metrics needs the bearer token configured in METRICS_TOKEN', 401,
    { challenge: BEARER }),

  // --- Forward auth (GET /auth/verify) ------------------------------------------------------
  /** `required` is every scope asked for: the challenge names them (RFC 6750 §3). */
  MissingRequiredScopes: define<[missing: string, required: string]>('TESSERA_MISSING_REQUIRED_SCOPES', 'the access token lacks the required scope: %s', 403, {
    oauth: 'insufficient_scope',
    challenge: (_missing, required) => ({ scheme: 'Bearer', error: 'insufficient_scope', description: 'The access token lacks a required scope', scope: required })
  }),
  AudienceNotAllowed: define('TESSERA_AUDIENCE_NOT_ALLOWED', 'the access token is not valid for the required audience', 403, {
    oauth: 'insufficient_scope',
    challenge: { scheme: 'Bearer', error: 'insufficient_scope', description: 'The access token is not valid for the required audience' }
  }),
  InvalidRequirement: define<[reason: string]>('TESSERA_INVALID_REQUIREMENT', '%s', 400, { oauth: 'invalid_request' }),

  // --- Passwords (Basic authentication and web sign-in) --------------------------------------
  PasswordRequired: define('TESSERA_PASSWORD_REQUIRED', 'Basic authentication with the user\'s username and password is required', 401,
    { challenge: BASIC }),
  CredentialsOfAnotherUser: define<[username: string]>('TESSERA_CREDENTIALS_OF_ANOTHER_USER', 'the credentials are not those of %s', 403),
  InvalidPassword: define('TESSERA_INVALID_PASSWORD', 'invalid username or password', 401, { challenge: BASIC }),
  /** The web page's sign-in: no Basic challenge, so a browser never shows its own password prompt. */
  SignInFailed: define('TESSERA_SIGN_IN_FAILED', 'invalid username or password', 401, { challenge: BEARER }),
  AccountSuspended: define<[username: string]>('TESSERA_ACCOUNT_SUSPENDED', 'the account %s is suspended', 403),
  BasicAuthDisabled: define('TESSERA_BASIC_AUTH_DISABLED',
    'Basic authentication is disabled on this server; an administrator creates tokens through the admin API', 403),

  // --- Client authentication (OAuth endpoints) ------------------------------------------------
  ClientAuthenticationRequired: define<[methods: string]>('TESSERA_CLIENT_AUTHENTICATION_REQUIRED', 'client authentication required: %s', 401,
    { oauth: 'invalid_client', challenge: BASIC }),
  UnsupportedClientAuthorization: define('TESSERA_UNSUPPORTED_CLIENT_AUTHORIZATION',
    'unsupported or malformed Authorization header; use Basic (client credentials) or Bearer', 401, { oauth: 'invalid_client', challenge: BASIC }),
  ClientCredentialsIncomplete: define('TESSERA_CLIENT_CREDENTIALS_INCOMPLETE', 'client_id and client_secret are both required', 401,
    { oauth: 'invalid_client', challenge: BASIC }),
  InvalidClient: define('TESSERA_INVALID_CLIENT', 'invalid client credentials', 401, { oauth: 'invalid_client', challenge: BASIC }),
  BearerCannotAuthenticateClient: define('TESSERA_BEARER_NOT_A_CLIENT',
    'a bearer token cannot authenticate a client here: use client_secret_basic or client_secret_post', 401, { oauth: 'invalid_client', challenge: BASIC }),
  MultipleClientAuthentication: define('TESSERA_MULTIPLE_CLIENT_AUTHENTICATION', 'use one client authentication method, not several', 400,
    { oauth: 'invalid_request' }),
  IntrospectScopeRequired: define('TESSERA_INTROSPECT_SCOPE_REQUIRED',
    'the caller is not allowed to introspect tokens (it lacks the introspect scope)', 403, { oauth: 'insufficient_scope' }),
  SelfIntrospection: define('TESSERA_SELF_INTROSPECTION', 'a token cannot be used to introspect itself', 400, { oauth: 'invalid_request' }),
  RevokeOnlyItself: define('TESSERA_REVOKE_ONLY_ITSELF',
    'a bearer token can revoke only itself: send the same token in the form, or authenticate as the application that owns it', 400, { oauth: 'invalid_request' }),
  PublicClientGrant: define('TESSERA_PUBLIC_CLIENT_GRANT',
    'a public client cannot use the client_credentials grant: it has no secret to authenticate with', 400, { oauth: 'unauthorized_client' }),
  UnsupportedGrantType: define<[grantType: string]>('TESSERA_UNSUPPORTED_GRANT_TYPE',
    'grant_type %s is not supported: this server issues client_credentials only', 400, { oauth: 'unsupported_grant_type' }),
  FormBodyRequired: define('TESSERA_FORM_BODY_REQUIRED', 'the request body must be application/x-www-form-urlencoded', 400,
    { oauth: 'invalid_request' }),
  UnsupportedMediaType: define<[type: string]>('TESSERA_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type: %s; use application/x-www-form-urlencoded', 415,
    { oauth: 'invalid_request' }),

  // --- Web sessions (the page at /settings/tokens) --------------------------------------------
  NotSignedIn: define('TESSERA_NOT_SIGNED_IN', 'not signed in: sign in with POST /api/v1/session (username and password)', 401,
    { challenge: BEARER }),
  SessionEnded: define<[reason: string]>('TESSERA_SESSION_ENDED', '%s', 401, { challenge: BEARER }),
  SessionScopeExceeded: define<[scope: string]>('TESSERA_SESSION_SCOPE_EXCEEDED',
    'a web session cannot use this route: it needs a bearer token with the %s scope', 403),
  CrossOrigin: define<[reason: string]>('TESSERA_CROSS_ORIGIN', 'cross-origin request refused: %s', 403),
  CsrfTokenMissing: define('TESSERA_CSRF_TOKEN_MISSING',
    'a state-changing request with the session cookie needs the session\'s CSRF token in the X-CSRF-Token header', 403),
  CsrfTokenInvalid: define('TESSERA_CSRF_TOKEN_INVALID', 'the X-CSRF-Token header does not match this session\'s CSRF token; reload the page', 403),
  PasswordSignInDisabled: define('TESSERA_PASSWORD_SIGN_IN_DISABLED',
    'password sign-in is disabled on this server (BASIC_AUTH_ENABLED=false); an administrator manages tokens through the admin API', 403),

  // --- Users ---------------------------------------------------------------------------------
  InvalidUsername: define<[username: string]>('TESSERA_INVALID_USERNAME',
    'invalid username "%s": use 1–40 ASCII letters, digits, ".", "_" or "-", starting with a letter or digit', 400),
  PasswordTooShort: define<[minimum: number]>('TESSERA_PASSWORD_TOO_SHORT', 'password must be at least %d characters', 400),
  UsernameTaken: define<[username: string]>('TESSERA_USERNAME_TAKEN', 'a user named "%s" already exists (usernames are case-insensitive)', 409),
  LastAdministrator: define<[username: string]>('TESSERA_LAST_ADMINISTRATOR',
    '%s is the last active administrator; make another user an administrator first', 409),
  NothingToChange: define('TESSERA_NOTHING_TO_CHANGE', 'nothing to change: give suspended, admin, password or email', 400),
  UserNotFound: define<[username: string]>('TESSERA_USER_NOT_FOUND', 'no user named "%s"', 404),
  UserSuspended: define<[username: string]>('TESSERA_USER_SUSPENDED', '%s is suspended; unsuspend the user first', 409),

  // --- Tokens --------------------------------------------------------------------------------
  InvalidTokenName: define('TESSERA_INVALID_TOKEN_NAME', 'name must be 1–100 characters (not only spaces)', 400),
  /** A token's or an application's name with a control or invisible formatting character (src/services/display-text.ts). */
  InvalidDisplayText: define<[field: string, codePoint: string]>('TESSERA_INVALID_DISPLAY_TEXT',
    '%s must not contain control or invisible formatting characters (%s)', 400),
  /** The message comes from the scope catalogue: the unknown scopes and the valid ones. */
  InvalidScope: define<[reason: string]>('TESSERA_INVALID_SCOPE', '%s', 400, { oauth: 'invalid_scope' }),
  AdminScopeForbidden: define('TESSERA_ADMIN_SCOPE_FORBIDDEN', 'only administrators may hold a token with the admin scope', 403),
  IntrospectScopeForbidden: define<[holders: string]>('TESSERA_INTROSPECT_SCOPE_FORBIDDEN',
    'only %s may hold a personal token with the introspect scope (PERSONAL_INTROSPECT_TOKENS); applications introspect with their own credentials', 403),
  /** Rotation hands out a new secret: a token may rotate another only if it could stand in for it. */
  RotationBeyondCaller: define<[reason: string]>('TESSERA_ROTATION_BEYOND_CALLER',
    'a token may rotate itself, or another of your tokens that grants nothing it lacks: %s; sign in to the web page to rotate it', 403),
  /** A token limited to other audiences used on Tessera's own API (whose audience is PUBLIC_URL). */
  TokenAudienceMismatch: define('TESSERA_TOKEN_AUDIENCE_MISMATCH', 'the access token is limited to other audiences than this server', 401,
    { oauth: 'invalid_token', challenge: { scheme: 'Bearer', error: 'invalid_token', description: 'The access token is not valid for this server' } }),
  EmptyAudience: define('TESSERA_EMPTY_AUDIENCE', 'audience entries must not be empty', 400),
  ExpiryConflict: define('TESSERA_EXPIRY_CONFLICT', 'give either expires_at or expires_in, not both', 400),
  InvalidExpiry: define('TESSERA_INVALID_EXPIRY', 'expires_at must be an RFC 3339 date-time', 400),
  ExpiryInPast: define('TESSERA_EXPIRY_IN_PAST', 'expires_at must be in the future', 400),
  ExpiryRequired: define<[maxLifetime: number]>('TESSERA_EXPIRY_REQUIRED', 'tokens must expire on this server: the maximum lifetime is %d seconds', 400),
  LifetimeTooLong: define<[maxLifetime: number]>('TESSERA_LIFETIME_TOO_LONG', 'the token lifetime exceeds the maximum of %d seconds', 400),
  TokenNameTaken: define<[name: string, username: string]>('TESSERA_TOKEN_NAME_TAKEN', 'a live token named "%s" already exists for %s', 409),
  TokenRevoked: define('TESSERA_TOKEN_REVOKED', 'this token has been revoked; create a new one instead', 409),
  TokenExpired: define('TESSERA_TOKEN_EXPIRED', 'this token has expired; create a new one instead', 409),
  TokenAlreadyRotated: define('TESSERA_TOKEN_ALREADY_ROTATED', 'this token has already been rotated; rotate its successor instead', 409),
  OwnTokenNotFound: define<[id: string]>('TESSERA_TOKEN_NOT_FOUND', 'you have no token with id %s', 404),
  UserTokenNotFound: define<[username: string, reference: string]>('TESSERA_USER_TOKEN_NOT_FOUND', '%s has no token with id or name "%s"', 404),
  AmbiguousTokenReference: define<[reference: string]>('TESSERA_AMBIGUOUS_TOKEN_REFERENCE',
    '"%s" is ambiguous: it is one token\'s id and another token\'s name; use the id of the token you mean', 422),
  TokenReferenceNamesSeveral: define<[reference: string, count: number]>('TESSERA_TOKEN_REFERENCE_NAMES_SEVERAL',
    '"%s" names %d tokens (some expired); delete by id instead', 422),
  TokenValuesShape: define('TESSERA_TOKEN_VALUES_SHAPE', 'give either "token" (one value) or "tokens" (a list), not both and not neither', 400),

  // --- Applications --------------------------------------------------------------------------
  ApplicationNotFound: define<[id: string]>('TESSERA_APPLICATION_NOT_FOUND', 'no application with id %s', 404),
  InvalidApplicationName: define('TESSERA_INVALID_APPLICATION_NAME', 'application name must be 1–100 characters (not only spaces)', 400),
  RedirectUriNotAbsolute: define<[uri: string]>('TESSERA_REDIRECT_URI_NOT_ABSOLUTE', 'redirect URI "%s" is not an absolute URI', 400),
  RedirectUriFragment: define<[uri: string]>('TESSERA_REDIRECT_URI_FRAGMENT', 'redirect URI "%s" must not have a fragment', 400),
  /** `what` completes "the built-in internal application …". */
  InternalApplicationProtected: define<[what: string]>('TESSERA_INTERNAL_APPLICATION_PROTECTED', 'the built-in internal application %s', 409),
  PublicClientHasNoSecret: define('TESSERA_PUBLIC_CLIENT_HAS_NO_SECRET', 'a public client has no client secret', 409),
  InternalApplicationMissing: define('TESSERA_INTERNAL_APP_MISSING',
    'the built-in first-party application "internal" is missing; an operator must run `tessera ensure-internal-app`', 503, { exposed: true }),

  // --- Signing keys --------------------------------------------------------------------------
  SigningKeyMissing: define('TESSERA_SIGNING_KEY_MISSING', 'no signing key is loaded yet; the service creates one at start', 503),
  SigningKeyUnreadable: define<[reason: string]>('TESSERA_SIGNING_KEY_UNREADABLE', '%s', 500),

  // --- Webhooks ------------------------------------------------------------------------------
  WebhookNotFound: define<[id: string]>('TESSERA_WEBHOOK_NOT_FOUND', 'no webhook endpoint with id %s', 404),
  WebhookUrlInvalid: define<[url: string]>('TESSERA_WEBHOOK_URL_INVALID', 'webhook URL "%s" is not an absolute http(s) URL without credentials', 400),

  // --- Leaked-token reports (GitHub secret scanning) -------------------------------------------
  /** The same answer for a missing header, an unknown key and a bad signature: nothing else is told. */
  ReportSignatureInvalid: define('TESSERA_REPORT_SIGNATURE_INVALID',
    'the report is not signed by a GitHub secret-scanning key (Github-Public-Key-Identifier, Github-Public-Key-Signature)', 401),
  ReportKeysUnavailable: define('TESSERA_REPORT_KEYS_UNAVAILABLE',
    'the secret-scanning public keys could not be loaded; the report can be sent again later', 503, { exposed: true, retryAfter: 60 }),
  ReportNotJson: define('TESSERA_REPORT_NOT_JSON', 'the report is not JSON', 400),

  // --- The edge ------------------------------------------------------------------------------
  RouteNotFound: define<[method: string, path: string]>('TESSERA_ROUTE_NOT_FOUND', 'no route %s %s', 404),
  WebPageMissing: define('TESSERA_WEB_PAGE_MISSING', 'the web page is not installed on this server (its web/ folder is missing)', 404),
  /** Fastify's FST_ERR_BAD_URL, rewritten: its message repeats the path, which may hold a secret. */
  BadUrl: define('TESSERA_BAD_URL', 'the URL is not valid: a percent-encoded part does not decode to UTF-8 text', 400, { oauth: 'invalid_request' }),
  /** Fastify's FST_ERR_MAX_PARAM_LENGTH, rewritten for the same reason. */
  PathParameterTooLong: define<[maximum: number]>('TESSERA_PATH_PARAMETER_TOO_LONG', 'a path parameter is longer than %d characters', 414,
    { oauth: 'invalid_request' }),
  RateLimited: define<[reason: string]>('TESSERA_RATE_LIMITED', '%s', 429, { oauth: 'rate_limited' }),
  // Retry-After 1: a replica checks the database every second, and a client may reach another.
  DatabaseUnavailable: define('TESSERA_DATABASE_UNAVAILABLE', 'the database is unavailable; try again shortly', 503,
    { oauth: 'temporarily_unavailable', exposed: true, retryAfter: 1 }),
  /** Every argon2 slot and its short queue are taken (PasswordHasher): refused at once rather than queued for seconds. */
  Busy: define('TESSERA_BUSY', 'the server is busy verifying credentials; retry in a second', 503,
    { oauth: 'temporarily_unavailable', exposed: true, retryAfter: 1 })
} as const

/** The 429 of a limit of `max` per `windowMs`, with the Retry-After the error reply turns into a header. */
export function rateLimited (message: string, max: number, windowMs: number, retryAfterSeconds: number): TesseraError {
  const retryAfter = Math.max(1, retryAfterSeconds)
  const error = new Errors.RateLimited(`${message}: at most ${max} in ${Math.round(windowMs / 1000)} seconds; retry in ${retryAfter} seconds`)
  error.retryAfter = retryAfter
  return error
}
