/**
 * Masks the secrets Tessera can recognise by their shape in any text it stores, logs or echoes:
 * a caller who puts a secret in the wrong field (a client secret as client_id, a token as a path
 * parameter) must not find it in the audit log or the logs.
 *
 * Recognised, checksum or not (a mistyped secret is still a secret):
 * - tokens, `<prefix>_` followed by at least the 32 base62 characters of a token's random body
 *   (a token cut before the end of its checksum still carries the whole body);
 * - client secrets, `<prefix>cs_` followed by 40 base62 characters (the same shape);
 * - JWTs, `eyJ…` header, payload and signature in base64url.
 *
 * `<prefix>` is any value TOKEN_PREFIX may take (schemas/env.ts: a lower-case letter, then 1–15
 * lower-case letters or digits), plus the `cs` of a client secret — not only the configured one:
 * a token of another Tessera deployment (staging pasted into production) is as secret, and
 * `recordAudit`, called throughout the domain, then needs no configuration. No username (at most
 * 40 characters), id or client_id has this shape.
 *
 * A masked secret keeps a hint for whoever reads the log: its prefix and its last four characters
 * (`tsr_…Ab12`, `tsrcs_…Ab12`, `eyJ…Ab12`). Stored tokens keep their last eight for display, so
 * four reveal nothing new, and a token's last six are its checksum rather than its random body.
 */

/** A prefix as TOKEN_PREFIX allows it (^[a-z][a-z0-9]{1,15}$), with room for a client secret's `cs`. */
export const SECRET_PREFIX_SOURCE = '[a-z][a-z0-9]{1,17}'
const PREFIXED_SECRET = `${SECRET_PREFIX_SOURCE}_[0-9A-Za-z]{32,}`
// Only where a base64url run starts: each attempt then scans one run, never the whole text again.
const JWT = '(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]*){2,4}'
const SECRET = new RegExp(`${JWT}|${PREFIXED_SECRET}`, 'g')

/** How long the hint at the end of a masked secret is. */
const HINT_LENGTH = 4

function maskOne (secret: string): string {
  const hint = secret.slice(-HINT_LENGTH)
  if (secret.startsWith('eyJ')) return `eyJ…${hint}`
  return `${secret.slice(0, secret.indexOf('_') + 1)}…${hint}`
}

/** `text` with every recognisable secret replaced by its mask (see above); masking a mask changes nothing. */
export function maskSecrets (text: string): string {
  return text.replace(SECRET, maskOne)
}

/** How deep maskSecretsDeep follows nested objects: audit details and serialised errors are shallow. */
const MAX_DEPTH = 8

/**
 * A copy of `value` with every string in it masked, through arrays and plain objects (audit
 * details); other objects (dates, class instances) are kept as they are.
 */
export function maskSecretsDeep<T> (value: T, depth = 0): T {
  if (typeof value === 'string') return maskSecrets(value) as T
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH) return value
  if (Array.isArray(value)) return value.map((item: unknown) => maskSecretsDeep(item, depth + 1)) as T
  const prototype = Object.getPrototypeOf(value) as unknown
  if (prototype !== Object.prototype && prototype !== null) return value
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) out[key] = maskSecretsDeep(item, depth + 1)
  return out as T
}
