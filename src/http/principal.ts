import type { User } from '../entities/user.js'
import type { Actor } from '../services/audit.js'
import type { ClientRecord } from '../services/client-auth.js'
import type { TokenRecord } from '../services/token-resolver.js'

/** The user behind an authenticated API request, and how they authenticated. */
export interface Principal {
  user: User
  /** The bearer token used, or null when the user authenticated with a password or a web session. */
  token: TokenRecord | null
  /** The web page's session (cookie), when that is how the user authenticated. */
  session?: { id: string, expiresAt: Date }
  actor: Actor
}

/** Who is calling an OAuth endpoint: an application, or (where allowed) a bearer token. */
export type Caller =
  | { kind: 'client', client: ClientRecord }
  | { kind: 'token', token: TokenRecord }

/** The Content-Type of every JSON answer Tessera sends as ready-made bytes. */
export const JSON_TYPE = 'application/json; charset=utf-8'
