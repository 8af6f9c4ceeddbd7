import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'

export const UserSchema = defineEntity({
  name: 'User',
  extends: BaseEntity,
  tableName: 'users',
  properties: {
    username: p.string().length(40),
    email: p.string().length(254).nullable(),
    // argon2id PHC string; absent for SSO-provisioned bot accounts.
    passwordHash: p.text().nullable().hidden().lazy(),
    admin: p.boolean().default(false),
    suspendedAt: p.datetime().nullable()
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
