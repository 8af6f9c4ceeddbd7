import type { EntityManager, FilterQuery } from '@mikro-orm/core'
import { AccessToken } from '../entities/access-token.js'
import type { User } from '../entities/user.js'
import { Errors } from '../errors.js'
import type { Actor } from './audit.js'
import { isUuid } from './ids.js'
import { newestFirst, type KeysetPlan } from './pagination.js'
import type { CacheInvalidation } from './invalidation.js'
import { revokeToken } from './tokens.js'

export type TokenState = 'active' | 'expired' | 'revoked'

export function tokenState (token: Pick<AccessToken, 'revokedAt' | 'expiresAt'>, now = new Date()): TokenState {
  if (token.revokedAt != null) return 'revoked'
  if (token.expiresAt != null && token.expiresAt.getTime() <= now.getTime()) return 'expired'
  return 'active'
}

/** Filters of the token listings (GitLab's admin token filters, by state and dates, and name search). */
export interface TokenFilters {
  state?: TokenState | 'all'
  q?: string
  created_before?: string
  created_after?: string
  last_used_before?: string
  last_used_after?: string
  expires_before?: string
  expires_after?: string
}

/** Escapes LIKE/ILIKE wildcards so a search term matches literally. */
export function escapeLike (value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`)
}

/** Translates listing filters into a MikroORM query on AccessToken. */
export function tokenFilterQuery (filters: TokenFilters, now = new Date()): FilterQuery<AccessToken> {
  const and: Array<FilterQuery<AccessToken>> = []
  switch (filters.state) {
    case 'active':
      and.push({ revokedAt: null, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] })
      break
    case 'expired':
      and.push({ revokedAt: null, expiresAt: { $lte: now } })
      break
    case 'revoked':
      and.push({ revokedAt: { $ne: null } })
      break
    default:
      break
  }
  if (filters.q !== undefined && filters.q !== '') and.push({ name: { $ilike: `%${escapeLike(filters.q)}%` } })
  const dates: Array<[keyof TokenFilters, 'createdAt' | 'lastUsedAt' | 'expiresAt', '$lt' | '$gt']> = [
    ['created_before', 'createdAt', '$lt'], ['created_after', 'createdAt', '$gt'],
    ['last_used_before', 'lastUsedAt', '$lt'], ['last_used_after', 'lastUsedAt', '$gt'],
    ['expires_before', 'expiresAt', '$lt'], ['expires_after', 'expiresAt', '$gt']
  ]
  for (const [param, field, op] of dates) {
    const value = filters[param]
    if (value !== undefined) and.push({ [field]: { [op]: new Date(value) } } as FilterQuery<AccessToken>)
  }
  return and.length === 0 ? {} : { $and: and }
}

/** A page of tokens, Forgejo style (page/limit), newest first, with the total count. */
export async function listTokensByPage (em: EntityManager, where: FilterQuery<AccessToken>, page: number, limit: number): Promise<{ items: AccessToken[], total: number }> {
  const [items, total] = await em.findAndCount(AccessToken, where, {
    orderBy: { id: 'desc' },
    limit,
    offset: (page - 1) * limit,
    populate: ['application', 'user']
  })
  return { items, total }
}

/** A page of tokens, keyset style (max_id/since_id/min_id), newest first. */
export async function listTokensByKeyset (em: EntityManager, where: FilterQuery<AccessToken>, plan: KeysetPlan): Promise<AccessToken[]> {
  const conditions: Array<FilterQuery<AccessToken>> = [where]
  if (Object.keys(plan.id).length > 0) conditions.push({ id: plan.id })
  const rows = await em.find(AccessToken, { $and: conditions }, {
    orderBy: { id: plan.order },
    limit: plan.limit,
    populate: ['application', 'user']
  })
  return newestFirst(rows, plan)
}

/**
 * Finds one of `owner`'s tokens by id, else by name (Forgejo's DELETE semantics). Revoked
 * tokens count as gone. 404 when nothing matches; 422 when the value is ambiguous — one
 * token's id and another's name, or the name of several tokens.
 */
export async function findTokenByReference (em: EntityManager, owner: User, reference: string): Promise<AccessToken> {
  const byId = isUuid(reference) ? await em.findOne(AccessToken, { id: reference.toLowerCase(), user: owner, revokedAt: null }, { populate: ['application'] }) : null
  const byName = await em.find(AccessToken, { user: owner, name: reference, revokedAt: null }, { populate: ['application'] })
  const others = byName.filter((token) => token.id !== byId?.id)
  if (byId !== null && others.length > 0) {
    throw new Errors.AmbiguousTokenReference(reference)
  }
  if (byId !== null) return byId
  if (byName.length > 1) throw new Errors.TokenReferenceNamesSeveral(reference, byName.length)
  const [match] = byName
  if (match === undefined) throw new Errors.UserTokenNotFound(owner.username, reference)
  return match
}

/**
 * Revokes a token with its audit event in one transaction, then drops it from the cache
 * before returning, so the caller's answer is only sent once the token is dead here.
 */
export async function revokeAndForget (em: EntityManager, invalidation: CacheInvalidation, token: AccessToken, actor: Actor, reason: string): Promise<boolean> {
  const changed = await em.transactional(async (tx) => {
    const managed = await tx.findOneOrFail(AccessToken, token.id)
    const revoked = revokeToken(tx, managed, actor, reason)
    token.revokedAt = managed.revokedAt
    return revoked
  })
  await invalidation.tokens([token.id])
  return changed
}
