import { LockMode, type EntityManager } from '@mikro-orm/core'
import { AccessToken } from '../entities/access-token.js'
import type { Application } from '../entities/application.js'
import { User } from '../entities/user.js'
import { Errors } from '../errors.js'
import { findInternalApplication } from './applications.js'
import { recordAudit, type Actor } from './audit.js'
import { displayName } from './display-text.js'
import { uuidv7 } from './ids.js'
import { effectiveScopes, forbiddenScope, UnknownScopesError, type Holder, type ScopeCatalogue } from './scopes.js'
import type { TokenCache } from './token-cache.js'
import { generateToken, lastEight, type SecretDigester } from './token-format.js'

export interface LifetimeLimits {
  /** Seconds; 0 means tokens without an explicit expiry never expire. */
  defaultLifetime: number
  /** Seconds; 0 means no maximum. */
  maxLifetime: number
}

export interface ExpiryInput {
  expires_at?: string | null
  expires_in?: number
}

/**
 * Turns `expires_at` / `expires_in` into an expiry date (or null: never), applying the
 * configured default and maximum. Throws a 400 that names the problem.
 */
export function resolveExpiry (input: ExpiryInput, limits: LifetimeLimits, now: Date): Date | null {
  if (input.expires_at !== undefined && input.expires_in !== undefined) {
    throw new Errors.ExpiryConflict()
  }
  let expiresAt: Date | null
  if (input.expires_in !== undefined) {
    expiresAt = new Date(now.getTime() + input.expires_in * 1000)
  } else if (input.expires_at === null) {
    expiresAt = null
  } else if (input.expires_at !== undefined) {
    expiresAt = new Date(input.expires_at)
    if (Number.isNaN(expiresAt.getTime())) throw new Errors.InvalidExpiry()
    if (expiresAt.getTime() <= now.getTime()) throw new Errors.ExpiryInPast()
  } else {
    expiresAt = limits.defaultLifetime > 0 ? new Date(now.getTime() + limits.defaultLifetime * 1000) : null
  }
  if (limits.maxLifetime > 0) {
    if (expiresAt === null) throw new Errors.ExpiryRequired(limits.maxLifetime)
    // One second of slack for clients computing expires_at from the maximum with their own clock;
    // expires_in involves no clock, so it gets none.
    const slack = typeof input.expires_at === 'string' ? 1 : 0
    if (expiresAt.getTime() - now.getTime() > (limits.maxLifetime + slack) * 1000) {
      throw new Errors.LifetimeTooLong(limits.maxLifetime)
    }
  }
  return expiresAt
}

export interface NewTokenInput {
  name: string
  scopes: string[]
  audience?: string[] | null
  expires_at?: string | null
  expires_in?: number
}

export interface IssuedToken {
  token: AccessToken
  /** The plaintext: returned to the caller once, never stored or logged. */
  plaintext: string
}

export interface TokenIssuerDeps {
  scopes: ScopeCatalogue
  digester: SecretDigester
  cache: TokenCache
  prefix: string
  limits: LifetimeLimits
  /** Signs JWT access tokens (applications with `token_format: 'jwt'`); absent: opaque only. */
  signer?: AccessTokenSigner
}

/** What a JWT access token is made from: the row it stands for. */
export interface TokenClaimsSource {
  id: string
  scopes: string[]
  audience: string[] | null
  createdAt: Date
  expiresAt: Date | null
}

export interface AccessTokenSigner {
  /** The `iss` of every token (PUBLIC_URL). */
  issuer: string
  sign: (typ: string, claims: Record<string, unknown>) => string
}

/** Makes the plaintext of a token whose row is about to be created (default: an opaque token). */
export type PlaintextFactory = (token: TokenClaimsSource) => string

/**
 * Issues an access token for `owner` (a user, or null for an application's own token) in `em`'s
 * current transaction, with its audit event. The owner row is locked so two concurrent requests
 * cannot both take the same name.
 */
export async function issueToken (
  em: EntityManager,
  deps: TokenIssuerDeps,
  params: { owner: User | null, application: Application, input: NewTokenInput, actor: Actor, now?: Date, plaintext?: PlaintextFactory }
): Promise<IssuedToken> {
  const { owner, application, input, actor } = params
  const now = params.now ?? new Date()
  const name = displayName(input.name, 'name')
  if (name === '' || name.length > 100) throw new Errors.InvalidTokenName()

  let scopes: string[]
  try {
    scopes = deps.scopes.validate(input.scopes)
  } catch (error) {
    if (error instanceof UnknownScopesError) throw new Errors.InvalidScope(error.message)
    throw error
  }
  if (owner !== null) assertMayHold(deps.scopes, scopes, { kind: 'user', admin: owner.admin })
  const audience = normaliseAudience(input.audience)
  const expiresAt = resolveExpiry(input, deps.limits, now)

  if (owner !== null) {
    await em.lock(owner, LockMode.PESSIMISTIC_WRITE)
    const clash = await em.count(AccessToken, {
      user: owner,
      name,
      revokedAt: null,
      $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }]
    })
    if (clash > 0) throw new Errors.TokenNameTaken(name, owner.username)
  }

  return mintToken(em, deps, { owner, application, name, scopes, audience, expiresAt, actor, now, plaintext: params.plaintext })
}

/**
 * The one way a personal access token is made — through Basic authentication, the web session,
 * the admin API, the CLI and the first start alike: owned by `ownerId` (read and locked afresh:
 * a suspended owner gets none), held by the built-in first-party application, in `em`'s
 * current transaction with its audit event.
 */
export async function issuePersonalToken (
  em: EntityManager,
  deps: TokenIssuerDeps,
  params: { ownerId: string, input: NewTokenInput, actor: Actor }
): Promise<IssuedToken> {
  const application = await findInternalApplication(em)
  if (application === null) throw new Errors.InternalApplicationMissing()
  const owner = await em.findOneOrFail(User, params.ownerId)
  if (!owner.isActive()) throw new Errors.UserSuspended(owner.username)
  return await issueToken(em, deps, { owner, application, input: params.input, actor: params.actor })
}

/** Refuses scopes the holder may not hold today (see forbiddenScope): `admin`, `introspect`, or an application's lost scope. */
function assertMayHold (catalogue: ScopeCatalogue, scopes: readonly string[], holder: Holder): void {
  const forbidden = forbiddenScope(catalogue, scopes, holder)
  if (forbidden === null) return
  if (forbidden === 'admin') throw new Errors.AdminScopeForbidden()
  if (forbidden === 'introspect' && holder.kind === 'user') {
    throw new Errors.IntrospectScopeForbidden(catalogue.personalIntrospect === 'admins' ? 'administrators' : 'applications')
  }
  throw new Errors.InvalidScope(`scope ${forbidden} is no longer held by this application`)
}

interface MintParams {
  owner: User | null
  application: Application
  name: string
  scopes: string[]
  audience: string[] | null
  expiresAt: Date | null
  actor: Actor
  now: Date
  rotatedFrom?: string
  plaintext?: PlaintextFactory | undefined
}

/** Creates the row for an already validated token, and its audit event. */
function mintToken (em: EntityManager, deps: TokenIssuerDeps, params: MintParams): IssuedToken {
  const { owner, application, name, scopes, audience, expiresAt, actor, now } = params
  const id = uuidv7()
  const plaintext = params.plaintext?.({ id, scopes, audience, createdAt: now, expiresAt }) ?? generateToken(deps.prefix)
  const digest = deps.digester.digest(plaintext)
  const token = em.create(AccessToken, {
    id,
    name,
    digest,
    lastEight: lastEight(plaintext),
    scopes,
    audience,
    user: owner,
    application,
    createdBy: actor.id,
    // The same instant as the expiry is computed from: expires_at − created_at is the lifetime asked for.
    createdAt: now,
    expiresAt,
    rotatedFrom: params.rotatedFrom ?? null
  })
  // A lookup of this very string may have been remembered as unknown a moment ago.
  deps.cache.forget(deps.digester.cacheKey(plaintext))
  const rotated = params.rotatedFrom !== undefined
  recordAudit(em, actor, rotated ? 'token.rotated' : 'token.created', { type: 'token', id: token.id, label: name }, {
    owner: owner?.username ?? null,
    client_id: application.clientId,
    scopes,
    expires_at: expiresAt?.toISOString() ?? null,
    ...(rotated ? { rotated_from: params.rotatedFrom } : {})
  })
  return { token, plaintext }
}

/** The bearer token asking for a rotation, as the resolver reads it (null: a password or web session asks). */
export interface RotatingToken {
  id: string
  /** What it grants now, space-separated. */
  effectiveScope: string
  audience: string[] | null
}

/**
 * Why `caller` could not stand in for `target`, or null when it could: itself; or a token that
 * grants every scope the target grants and is limited to no fewer audiences (an unrestricted
 * caller, or one whose audiences include all of the target's). Anything else would let a token
 * with `write:tokens` mint a stronger one.
 */
export function standInRefusal (caller: RotatingToken, target: Pick<AccessToken, 'id' | 'scopes' | 'audience'>): string | null {
  if (caller.id === target.id) return null
  const held = new Set(caller.effectiveScope.split(' '))
  const lacking = effectiveScopes(target.scopes).filter((scope) => !held.has(scope))
  if (lacking.length > 0) return `this token lacks ${lacking.join(', ')}`
  const callerAudience = caller.audience
  if (callerAudience !== null && (target.audience == null || target.audience.some((entry) => !callerAudience.includes(entry)))) {
    return 'this token is limited to fewer audiences'
  }
  return null
}

/**
 * Rotates a live token in `em`'s current transaction: a new secret with the same name, scopes,
 * audience and lifetime length (capped by today's maximum), `rotated_from` recorded. The old
 * token dies now, or after `graceSeconds` during which both work. Each token is rotated once:
 * a second rotation of the same token is a 409. The caller drops the old token from the cache.
 */
export async function rotateToken (
  em: EntityManager,
  deps: TokenIssuerDeps,
  params: { tokenId: string, graceSeconds: number, actor: Actor, rotatedBy: RotatingToken | null, now?: Date }
): Promise<IssuedToken> {
  const now = params.now ?? new Date()
  const old = await em.findOneOrFail(AccessToken, params.tokenId, { populate: ['application', 'user'], lockMode: LockMode.PESSIMISTIC_WRITE })
  if (old.revokedAt != null) throw new Errors.TokenRevoked()
  if (old.expiresAt != null && old.expiresAt.getTime() <= now.getTime()) throw new Errors.TokenExpired()
  if (await em.count(AccessToken, { rotatedFrom: old.id }) > 0) throw new Errors.TokenAlreadyRotated()
  // Rotation mints: the new token must be one its owner may hold today, and one the caller could have used in its place.
  const owner = (old.user ?? null) as User | null
  assertMayHold(deps.scopes, old.scopes, owner !== null ? { kind: 'user', admin: owner.admin } : { kind: 'application', scopes: old.application.scopes })
  if (params.rotatedBy !== null) {
    const refusal = standInRefusal(params.rotatedBy, old)
    if (refusal !== null) throw new Errors.RotationBeyondCaller(refusal)
  }

  let expiresAt: Date | null = old.expiresAt == null ? null : new Date(now.getTime() + (old.expiresAt.getTime() - old.createdAt.getTime()))
  const max = deps.limits.maxLifetime
  if (max > 0 && (expiresAt === null || expiresAt.getTime() - now.getTime() > max * 1000)) expiresAt = new Date(now.getTime() + max * 1000)

  if (params.graceSeconds > 0) {
    const graceEnd = new Date(now.getTime() + params.graceSeconds * 1000)
    if (old.expiresAt == null || old.expiresAt.getTime() > graceEnd.getTime()) old.expiresAt = graceEnd
  } else {
    old.revokedAt = now
  }
  return mintToken(em, deps, {
    owner,
    application: old.application,
    name: old.name,
    scopes: old.scopes,
    audience: old.audience ?? null,
    expiresAt,
    actor: params.actor,
    now,
    rotatedFrom: old.id
  })
}

function normaliseAudience (audience: string[] | null | undefined): string[] | null {
  if (audience == null || audience.length === 0) return null
  const unique = [...new Set(audience.map((entry) => entry.trim()))]
  if (unique.some((entry) => entry === '')) throw new Errors.EmptyAudience()
  return unique
}

/**
 * Revokes a token in `em`'s current transaction with its audit event. The caller drops the
 * cache entry (TokenCache.invalidateToken) after the commit, before answering.
 */
export function revokeToken (em: EntityManager, token: AccessToken, actor: Actor, reason: string, now = new Date()): boolean {
  if (token.revokedAt != null) return false
  token.revokedAt = now
  recordAudit(em, actor, 'token.revoked', { type: 'token', id: token.id, label: token.name }, { reason })
  return true
}
