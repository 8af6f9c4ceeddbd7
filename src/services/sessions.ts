import { createHmac, randomBytes } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/core'
import { WebSession } from '../entities/session.js'
import type { User } from '../entities/user.js'
import { safeEqual, type SecretDigester } from './token-format.js'

/**
 * Sessions of the self-service web page. A session is a random secret held by the browser in an
 * HttpOnly cookie and stored here only as a digest. It grants exactly what the page needs — the
 * owner's own tokens — and nothing else: never `admin`, never `introspect`.
 */
export const SESSION_SCOPES: readonly string[] = ['read:tokens', 'write:tokens']

export interface SessionPolicy {
  /** Seconds from sign-in to the absolute end of the session. */
  lifetime: number
  /** Seconds without a request after which the session ends. */
  idleTimeout: number
}

/** How often, at most, a session's last_seen_at is written (it only serves the idle timeout). */
const TOUCH_INTERVAL_MS = 60_000

/** 32 random bytes, base64url: 43 characters. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/

function newSessionSecret (): string {
  return randomBytes(32).toString('base64url')
}

/** Whether a cookie value could be a session secret at all (no database work for garbage). */
export function isSessionSecret (value: string): boolean {
  return SECRET_PATTERN.test(value)
}

/**
 * The session's CSRF token, derived from its secret (OWASP's HMAC-based token pattern): the
 * page reads it from the API and sends it back in a header; another origin can read neither the
 * cookie nor the API's answers, so it cannot forge one. Nothing extra is stored.
 */
export function csrfTokenFor (secret: string): string {
  return createHmac('sha256', secret).update('tessera web csrf v1').digest('base64url')
}

export function isValidCsrfToken (secret: string, candidate: string): boolean {
  return safeEqual(csrfTokenFor(secret), candidate)
}

/** The end of a session: the earlier of its absolute expiry and its idle deadline. */
function sessionEnd (session: WebSession, policy: SessionPolicy): Date {
  const idleEnd = session.lastSeenAt.getTime() + policy.idleTimeout * 1000
  return new Date(Math.min(session.expiresAt.getTime(), idleEnd))
}

/**
 * Starts a session for `user` (whose password the caller has verified) in `em`'s unit of work;
 * the caller flushes. Ended sessions of every user are swept on the way (one indexed statement),
 * so the table holds only live ones and a few stragglers.
 */
export async function startSession (
  em: EntityManager,
  digester: SecretDigester,
  params: { user: User, policy: SessionPolicy, ip: string | null, userAgent: string | null, now?: Date }
): Promise<{ session: WebSession, secret: string }> {
  const now = params.now ?? new Date()
  await sweepEndedSessions(em, params.policy, now)
  const secret = newSessionSecret()
  const session = em.create(WebSession, {
    digest: digester.digest(secret),
    user: params.user,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: new Date(now.getTime() + params.policy.lifetime * 1000),
    ip: params.ip,
    userAgent: params.userAgent?.slice(0, 300) ?? null
  })
  return { session, secret }
}

async function sweepEndedSessions (em: EntityManager, policy: SessionPolicy, now = new Date()): Promise<number> {
  return await em.nativeDelete(WebSession, {
    $or: [{ expiresAt: { $lte: now } }, { lastSeenAt: { $lte: new Date(now.getTime() - policy.idleTimeout * 1000) } }]
  })
}

export type SessionLookup =
  | { status: 'active', session: WebSession, user: User }
  /** Unknown, signed out, or swept after it ended. */
  | { status: 'unknown' }
  | { status: 'expired', reason: 'lifetime' | 'idle' }
  | { status: 'suspended', user: User }

/**
 * Finds the live session behind a cookie secret, with its user read afresh (a suspension ends
 * every session at the next request). An ended session is deleted when seen. A live one has its
 * last_seen_at moved forward, at most once a minute.
 */
export async function resolveSession (em: EntityManager, digester: SecretDigester, secret: string, policy: SessionPolicy, now = new Date()): Promise<SessionLookup> {
  if (!isSessionSecret(secret)) return { status: 'unknown' }
  const session = await em.findOne(WebSession, { digest: digester.digest(secret) }, { populate: ['user'] })
  if (session === null) return { status: 'unknown' }
  const lifetimeOver = session.expiresAt.getTime() <= now.getTime()
  if (lifetimeOver || sessionEnd(session, policy).getTime() <= now.getTime()) {
    await em.nativeDelete(WebSession, { id: session.id })
    return { status: 'expired', reason: lifetimeOver ? 'lifetime' : 'idle' }
  }
  const user = session.user as User
  if (!user.isActive()) return { status: 'suspended', user }
  if (now.getTime() - session.lastSeenAt.getTime() >= TOUCH_INTERVAL_MS) {
    session.lastSeenAt = now
    await em.flush()
  }
  return { status: 'active', session, user }
}

/** Ends a session (sign-out). Returns whether it still existed. */
export async function endSession (em: EntityManager, sessionId: string): Promise<boolean> {
  return await em.nativeDelete(WebSession, { id: sessionId }) > 0
}
