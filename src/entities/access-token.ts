import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'
import { ApplicationSchema } from './application.js'
import { UserSchema } from './user.js'

export const AccessTokenSchema = defineEntity({
  name: 'AccessToken',
  extends: BaseEntity,
  tableName: 'access_tokens',
  properties: {
    name: p.string().length(100),
    // SHA-256 or HMAC-SHA256 of the plaintext, hex; the plaintext itself is never stored.
    digest: p.string().length(64).unique().hidden(),
    lastEight: p.string().length(8),
    scopes: p.array(),
    audience: p.array().nullable(),
    user: () => p.manyToOne(UserSchema).nullable().deleteRule('cascade').index(),
    application: () => p.manyToOne(ApplicationSchema).deleteRule('cascade').index(),
    createdBy: () => p.manyToOne(UserSchema).nullable().deleteRule('set null'),
    expiresAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
    lastUsedAt: p.datetime().nullable(),
    lastUsedIp: p.string().length(45).nullable(),
    rotatedFrom: p.uuid().nullable(),
    // The smallest TOKEN_EXPIRY_NOTICE_DAYS threshold already announced (0: the expiry itself).
    expiryNoticeDays: p.integer().nullable()
  }
})

export class AccessToken extends AccessTokenSchema.class {}

AccessTokenSchema.setClass(AccessToken)
