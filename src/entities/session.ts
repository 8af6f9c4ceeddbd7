import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'
import { UserSchema } from './user.js'

/**
 * A signed-in session of the self-service web page. The browser holds a random secret in an
 * HttpOnly cookie; only its digest is stored, so a copy of this table signs nobody in. Deleting
 * the row ends the session (sign-out); deleting the user ends all of theirs.
 */
export const WebSessionSchema = defineEntity({
  name: 'WebSession',
  extends: BaseEntity,
  tableName: 'web_sessions',
  properties: {
    // SHA-256 or HMAC-SHA256 of the cookie's secret, hex.
    digest: p.string().length(64).unique().hidden(),
    user: () => p.manyToOne(UserSchema).deleteRule('cascade').index(),
    // Bumped at most once a minute; the session ends after SESSION_IDLE_TIMEOUT without use.
    lastSeenAt: p.datetime(),
    // The absolute end: SESSION_LIFETIME after sign-in, however busy the session.
    expiresAt: p.datetime().index(),
    ip: p.string().length(45).nullable(),
    userAgent: p.string().length(300).nullable()
  }
})

export class WebSession extends WebSessionSchema.class {}

WebSessionSchema.setClass(WebSession)
