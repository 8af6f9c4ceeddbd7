import { raw, type EntityManager } from '@mikro-orm/core'
import { MIN_PASSWORD_LENGTH, USERNAME_PATTERN } from '../../schemas/common.js'
import { User } from '../entities/user.js'
import { Errors } from '../errors.js'
import { recordAudit, type Actor } from './audit.js'
import { uuidv7 } from './ids.js'
import type { PasswordHasher } from './passwords.js'

const USERNAME_REGEXP = new RegExp(USERNAME_PATTERN)

/** Whether `username` could name a user (schemas/common.ts USERNAME_PATTERN). */
export function isValidUsername (username: string): boolean {
  return USERNAME_REGEXP.test(username)
}

function assertValidUsername (username: string): void {
  if (!isValidUsername(username)) throw new Errors.InvalidUsername(username.slice(0, 60))
}

export function assertPasswordLength (password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new Errors.PasswordTooShort(MIN_PASSWORD_LENGTH)
}

/** Finds a user by username, case-insensitively. */
async function findUserByUsername (em: EntityManager, username: string, options: { withPassword?: boolean } = {}): Promise<User | null> {
  if (!isValidUsername(username)) return null
  return await em.findOne(User, { [raw('lower(username)')]: username.toLowerCase() }, options.withPassword === true ? { populate: ['passwordHash'] } : {})
}

/** Finds a user by username, case-insensitively; 404 when there is none. */
export async function findUserOrFail (em: EntityManager, username: string): Promise<User> {
  const user = await findUserByUsername(em, username)
  if (user === null) throw new Errors.UserNotFound(username)
  return user
}

export type UserAuthentication =
  /** `rehashed`: the password being re-hashed with the current argon2 parameters (see upgradePasswordHash), or null. */
  | { status: 'authenticated', user: User, rehashed: Promise<void> | null }
  /** Unknown user, no password, or a wrong one: the caller cannot tell which (the time spent is the same). */
  | { status: 'invalid' }
  /** The right password of a suspended account. */
  | { status: 'suspended', user: User }

/**
 * The one way a user proves who they are with a password, for every route that takes one
 * (Basic authentication, the web page's sign-in). argon2id runs whether or not the user exists.
 */
export async function authenticateUser (em: EntityManager, hasher: PasswordHasher, username: string, password: string): Promise<UserAuthentication> {
  const user = await findUserByUsername(em, username, { withPassword: true })
  if (!await hasher.verify(user?.passwordHash, password) || user === null) return { status: 'invalid' }
  return user.isActive() ? { status: 'authenticated', user, rehashed: upgradePasswordHash(em, hasher, user, password) } : { status: 'suspended', user }
}

/**
 * After the right password: when its hash was made with other argon2 parameters than the
 * configured ones, stores a new one (one UPDATE, only over the hash that was verified, so a
 * password changed meanwhile wins). Costs converge after ARGON2_* change, and with them the time
 * an unknown username waits (PasswordHasher). Runs beside the request; null when nothing to do.
 */
function upgradePasswordHash (em: EntityManager, hasher: PasswordHasher, user: User, password: string): Promise<void> | null {
  const stored = user.passwordHash
  if (stored == null || !hasher.needsRehash(stored)) return null
  return (async () => {
    const fresh = await hasher.hash(password)
    await em.fork().nativeUpdate(User, { id: user.id, passwordHash: stored }, { passwordHash: fresh })
  })()
}

export interface CreateUserInput {
  username: string
  email?: string | null
  password?: string | null
  admin?: boolean
}

/** Creates a user and its audit event in `em`'s current transaction; the caller flushes. */
export async function createUser (em: EntityManager, hasher: PasswordHasher, input: CreateUserInput, actor: Actor): Promise<User> {
  assertValidUsername(input.username)
  if (input.password != null) assertPasswordLength(input.password)
  if (await findUserByUsername(em, input.username) !== null) throw new Errors.UsernameTaken(input.username)
  const user = em.create(User, {
    id: uuidv7(),
    username: input.username,
    email: input.email ?? null,
    passwordHash: input.password != null ? await hasher.hash(input.password) : null,
    admin: input.admin ?? false
  })
  recordAudit(em, actor, 'user.created', { type: 'user', id: user.id, label: user.username }, { admin: user.admin, password: input.password != null })
  return user
}
