import { AccessTokenSchema } from './access-token.js'
import { ApplicationSchema } from './application.js'
import { AuditEventSchema } from './audit-event.js'
import { SigningKeySchema } from './signing-key.js'
import { WebSessionSchema } from './session.js'
import { UserSchema } from './user.js'

export { AccessToken } from './access-token.js'
export { Application } from './application.js'
export { AuditEvent } from './audit-event.js'
export { SigningKey } from './signing-key.js'
export { WebSession } from './session.js'
export { User } from './user.js'

export const entities = [UserSchema, ApplicationSchema, AccessTokenSchema, AuditEventSchema, SigningKeySchema, WebSessionSchema]
