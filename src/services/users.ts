import { raw, type EntityManager } from '@mikro-orm/core'
import { User } from '../entities/user.js'
import { Errors } from '../errors.js'
import { recordAudit, type Actor } from './audit.js'
import { uuidv7 } from './ids.js'
import type { PasswordHasher } from './passwords.js'

/** 1–40 ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const USERNAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'
const USERNAME_REGEXP = new RegExp(USERNAME_PATTERN)

export function isValidUsername (username: string): boolean {
  return USERNAME_REGEXP.test(username)
}

export function assertValidUsername (username: string): void {
  if (!isValidUsername(username)) {
    throw new Errors.BadRequest(`invalid username "${username.slice(0, 60)}": use 1–40 ASCII letters, digits, ".", "_" or "-", starting with a letter or digit`)
  }
}

/** Finds a user by username, case-insensitively. */
export async function findUserByUsername (em: EntityManager, username: string, options: { withPassword?: boolean } = {}): Promise<User | null> {
  if (!isValidUsername(username)) return null
  return await em.findOne(User, { [raw('lower(username)')]: username.toLowerCase() }, options.withPassword === true ? { populate: ['passwordHash'] } : {})
}

export interface CreateUserInput {
  username: string
  email?: string | null
  password?: string | null
  admin?: boolean
}

export const MIN_PASSWORD_LENGTH = 8

/** Creates a user and its audit event in `em`'s current transaction; the caller flushes. */
export async function createUser (em: EntityManager, hasher: PasswordHasher, input: CreateUserInput, actor: Actor): Promise<User> {
  assertValidUsername(input.username)
  if (input.password != null && input.password.length < MIN_PASSWORD_LENGTH) {
    throw new Errors.BadRequest(`password must be at least ${MIN_PASSWORD_LENGTH} characters`)
  }
  if (await findUserByUsername(em, input.username) !== null) {
    throw new Errors.Conflict(`a user named "${input.username}" already exists (usernames are case-insensitive)`)
  }
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
