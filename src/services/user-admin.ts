import type { EntityManager, FilterQuery } from '@mikro-orm/core'
import { WebSession } from '../entities/session.js'
import { User } from '../entities/user.js'
import { Errors } from '../errors.js'
import { recordAudit, type Actor } from './audit.js'
import type { PasswordHasher } from './passwords.js'
import { takeTransactionLock } from './locks.js'
import { escapeLike } from './token-management.js'
import { assertPasswordLength } from './users.js'

export interface UserPatch {
  suspended?: boolean
  admin?: boolean
  password?: string | null
  email?: string | null
}

export interface UserFilters {
  q?: string
  state?: 'active' | 'suspended' | 'all'
  admin?: boolean
  created_before?: string
  created_after?: string
}

export function userFilterQuery (filters: UserFilters): FilterQuery<User> {
  const and: Array<FilterQuery<User>> = []
  if (filters.state === 'active') and.push({ suspendedAt: null })
  if (filters.state === 'suspended') and.push({ suspendedAt: { $ne: null } })
  if (filters.admin !== undefined) and.push({ admin: filters.admin })
  if (filters.q !== undefined && filters.q !== '') and.push({ username: { $ilike: `%${escapeLike(filters.q)}%` } })
  if (filters.created_before !== undefined) and.push({ createdAt: { $lt: new Date(filters.created_before) } })
  if (filters.created_after !== undefined) and.push({ createdAt: { $gt: new Date(filters.created_after) } })
  return and.length === 0 ? {} : { $and: and }
}

/**
 * Refuses a change that would leave no active administrator. Takes a transaction-scoped
 * advisory lock first, so two concurrent demotions cannot both pass the check.
 */
async function assertAdminRemains (em: EntityManager, target: User): Promise<void> {
  if (!target.admin || !target.isActive()) return
  await takeTransactionLock(em, 'adminChange')
  const others = await em.count(User, { admin: true, suspendedAt: null, id: { $ne: target.id } })
  if (others === 0) throw new Errors.LastAdministrator(target.username)
}

/**
 * Applies a change to a user (by an admin through the API, or an operator through the CLI), with
 * its audit events, in `em`'s transaction. The last active administrator cannot be demoted,
 * suspended or deleted, whoever asks. A new or removed password, a suspension or a demotion ends
 * all the user's web sessions.
 */
export async function updateUser (em: EntityManager, hasher: PasswordHasher, target: User, patch: UserPatch, actor: Actor): Promise<{ ownerAccessChanged: boolean }> {
  if (Object.keys(patch).length === 0) throw new Errors.NothingToChange()
  const removesAdmin = (patch.admin === false && target.admin) || (patch.suspended === true && target.isActive())
  if (removesAdmin) await assertAdminRemains(em, target)

  let ownerAccessChanged = false
  /** A new or removed password, a suspension or a demotion: nothing that vouched for a session holds any more. */
  let endsSessions = patch.password !== undefined
  if (patch.suspended !== undefined && patch.suspended !== !target.isActive()) {
    target.suspendedAt = patch.suspended ? new Date() : null
    ownerAccessChanged = true
    endsSessions ||= patch.suspended
    recordAudit(em, actor, patch.suspended ? 'user.suspended' : 'user.unsuspended', { type: 'user', id: target.id, label: target.username })
  }
  const changed: string[] = []
  if (patch.admin !== undefined && patch.admin !== target.admin) {
    target.admin = patch.admin
    ownerAccessChanged = true
    endsSessions ||= !patch.admin
    changed.push('admin')
  }
  if (patch.password !== undefined) {
    if (patch.password !== null) assertPasswordLength(patch.password)
    target.passwordHash = patch.password === null ? null : await hasher.hash(patch.password)
    changed.push(patch.password === null ? 'password removed' : 'password')
  }
  if (patch.email !== undefined && patch.email !== target.email) {
    target.email = patch.email
    changed.push('email')
  }
  // Deleted, not blocked: unsuspending or promoting again revives none of them.
  if (endsSessions) await em.nativeDelete(WebSession, { user: target.id })
  if (changed.length > 0) {
    recordAudit(em, actor, 'user.updated', { type: 'user', id: target.id, label: target.username }, { changed, ...(patch.admin !== undefined ? { admin: target.admin } : {}) })
  }
  return { ownerAccessChanged }
}

/** Deletes a user (their tokens go with them), with its audit event, in `em`'s transaction. */
export async function deleteUser (em: EntityManager, target: User, actor: Actor): Promise<void> {
  await assertAdminRemains(em, target)
  recordAudit(em, actor, 'user.deleted', { type: 'user', id: target.id, label: target.username })
  em.remove(target)
}
