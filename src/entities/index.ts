import { AccessTokenSchema } from './access-token.js'
import { BaseSchema } from './base.js'
import { ApplicationSchema } from './application.js'
import { AuditEventSchema } from './audit-event.js'
import { SigningKeySchema } from './signing-key.js'
import { WebSessionSchema } from './session.js'
import { UserSchema } from './user.js'
import { EventSchema, WebhookDeliverySchema, WebhookEndpointSchema } from './webhook.js'

export const entities = [BaseSchema, UserSchema, ApplicationSchema, AccessTokenSchema, AuditEventSchema, SigningKeySchema, WebSessionSchema, EventSchema, WebhookEndpointSchema, WebhookDeliverySchema]
