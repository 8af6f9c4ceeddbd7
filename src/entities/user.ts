import { defineEntity, p } from '@mikro-orm/core'
import { uuidv7 } from '../services/ids.js'

export const UserSchema = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.uuid().primary().onCreate(() => uuidv7()),
    username: p.string().length(40),
    email: p.string().length(254).nullable(),
    // argon2id PHC string; absent for SSO-provisioned bot accounts.
    passwordHash: p.text().nullable().hidden().lazy(),
    admin: p.boolean().default(false),
    suspendedAt: p.datetime().nullable(),
    createdAt: p.datetime().onCreate(() => new Date())
  },
  // Usernames are unique case-insensitively.
  indexes: [{ name: 'users_username_lower_unique', expression: 'create unique index "users_username_lower_unique" on "users" (lower("username"))' }]
})

export class User extends UserSchema.class {
  isActive (): boolean {
    return this.suspendedAt == null
  }
}

UserSchema.setClass(User)
