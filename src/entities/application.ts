import { defineEntity, p } from '@mikro-orm/core'
import { BaseEntity } from './base.js'

const TOKEN_FORMATS = ['opaque', 'jwt'] as const

export const ApplicationSchema = defineEntity({
  name: 'Application',
  extends: BaseEntity,
  tableName: 'applications',
  properties: {
    name: p.string().length(100),
    clientId: p.string().length(64).unique(),
    // argon2id PHC string of the client secret; shown once, never stored in clear.
    clientSecretHash: p.text().nullable().hidden().lazy(),
    confidential: p.boolean().default(true),
    redirectUris: p.array().default([]),
    scopes: p.array().default([]),
    // When set, this application may only introspect tokens limited to one of these audiences.
    introspectionAudiences: p.array().nullable(),
    // When set, this application may only introspect tokens carrying one of these scopes (effective).
    introspectionScopes: p.array().nullable(),
    tokenFormat: p.enum(TOKEN_FORMATS).default('opaque')
  }
})

export class Application extends ApplicationSchema.class {}

ApplicationSchema.setClass(Application)
