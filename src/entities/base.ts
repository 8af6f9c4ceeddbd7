import { defineEntity, p } from '@mikro-orm/core'
import { v7 } from 'uuid'

/**
 * What every row but a signing key has: a time-sortable UUIDv7 id (a bigger id is a newer row;
 * keyset pagination relies on it) and its creation time.
 */
export const BaseSchema = defineEntity({
  name: 'BaseEntity',
  abstract: true,
  properties: {
    id: p.uuid().primary().onCreate(() => v7()),
    createdAt: p.datetime().onCreate(() => new Date())
  }
})

export abstract class BaseEntity extends BaseSchema.class {}

BaseSchema.setClass(BaseEntity)
