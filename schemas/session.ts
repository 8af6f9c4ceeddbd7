import { Type } from 'typebox'

/** Sign-in of the web page. The username is checked as a credential, not as a pattern: a malformed one is simply wrong. */
export const SignInBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 100, description: 'Case-insensitive username' }),
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })

export const SessionView = Type.Object({
  username: Type.String(),
  user_id: Type.String({ format: 'uuid' }),
  admin: Type.Boolean(),
  scopes: Type.Array(Type.String(), { description: 'What the session may do: the owner\'s own tokens (read:tokens write:tokens), never more' }),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time', description: 'The absolute end of the session; it ends sooner after idle_timeout seconds without a request' }),
  idle_timeout: Type.Integer({ description: 'Seconds without a request after which the session ends' }),
  csrf_token: Type.String({ description: 'Send it as X-CSRF-Token on every state-changing request made with the session cookie' })
}, { title: 'SessionView', description: 'A signed-in session of the web page (the secret itself stays in its HttpOnly cookie)' })

export const ExpiryPreset = Type.Object({
  label: Type.String({ description: 'For people, e.g. "30 days"' }),
  expires_in: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'Seconds, or null for a token that never expires (only when no maximum is configured)' }),
  default: Type.Boolean({ description: 'The lifetime a token gets when none is asked for' })
})

export const TokenPolicy = Type.Object({
  scopes: Type.Array(Type.Object({ name: Type.String(), description: Type.String() }), { description: 'Every scope a token may carry (admin only for administrators)' }),
  default_lifetime: Type.Integer({ description: 'Seconds; 0: tokens without an expiry never expire' }),
  max_lifetime: Type.Integer({ description: 'Seconds; 0: no maximum' }),
  expiry_presets: Type.Array(ExpiryPreset, { description: 'Sensible lifetimes within the maximum, shortest first' }),
  rotation_max_grace: Type.Integer({ description: 'Longest grace period a rotation may give the old token, seconds' }),
  last_used_precision: Type.Integer({ description: 'Seconds: last_used is written in batches this far apart, so it is approximate to that' }),
  internal_application: Type.Boolean({ description: 'Whether the first-party application that owns personal tokens exists (false: creation answers 503 until an operator runs `tessera ensure-internal-app`)' }),
  password_sign_in: Type.Boolean({ description: 'Whether people may sign in (and create tokens) with a password (BASIC_AUTH_ENABLED)' }),
  expiry_notice_days: Type.Array(Type.Integer(), { description: 'Days before a personal token\'s expiry when its owner is told (TOKEN_EXPIRY_NOTICE_DAYS), largest first' })
}, { title: 'TokenPolicy' })
