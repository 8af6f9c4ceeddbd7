import { User } from '../entities/user.js'
import { ensureInternalApplication } from './applications.js'
import { SYSTEM_ACTOR } from './audit.js'
import { takeTransactionLock } from './locks.js'
import type { Services } from './index.js'
import { base62 } from './token-format.js'
import { issuePersonalToken } from './tokens.js'
import { createUser } from './users.js'

export interface BootstrapResult {
  username: string
  /** Set when the password was generated (and must be shown once); null when it came from configuration. */
  generatedPassword: string | null
  /** The first admin token, when credentials were generated for a development start. */
  token: string | null
}

/**
 * First start on an empty database: ensures the internal application and creates the first
 * admin. With BOOTSTRAP_ADMIN_PASSWORD the admin gets that password and nothing secret is
 * printed (production); without it a password and a first admin token are generated and
 * returned once (development). Runs once: any existing user makes it a no-op.
 */
export async function bootstrap (services: Services): Promise<BootstrapResult | null> {
  const { config, orm } = services
  const em = orm.em.fork()
  await ensureInternalApplication(em)
  return await em.transactional(async (tx) => {
    await takeTransactionLock(tx, 'bootstrap')
    if (await tx.count(User, {}) > 0) return null
    const generatedPassword = config.BOOTSTRAP_ADMIN_PASSWORD === '' ? base62(24) : null
    const admin = await createUser(tx, services.hasher, {
      username: config.BOOTSTRAP_ADMIN_USERNAME,
      password: generatedPassword ?? config.BOOTSTRAP_ADMIN_PASSWORD,
      admin: true
    }, SYSTEM_ACTOR)
    let token: string | null = null
    if (generatedPassword !== null) {
      const issued = await issuePersonalToken(tx, services.issuer, {
        ownerId: admin.id,
        input: { name: 'bootstrap', scopes: ['admin', 'introspect', 'write:tokens'] },
        actor: SYSTEM_ACTOR
      })
      token = issued.plaintext
    }
    return { username: admin.username, generatedPassword, token }
  })
}
