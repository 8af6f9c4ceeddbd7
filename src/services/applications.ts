import type { EntityManager } from '@mikro-orm/core'
import { Application } from '../entities/application.js'
import { Errors } from '../errors.js'
import { recordAudit, type Actor } from './audit.js'
import { uuidv7 } from './ids.js'
import type { PasswordHasher } from './passwords.js'
import { UnknownScopesError, type ScopeCatalogue } from './scopes.js'
import { base62 } from './token-format.js'

/** The client_id of the built-in first-party application that owns personal access tokens. */
export const INTERNAL_CLIENT_ID = 'internal'
export const INTERNAL_APPLICATION_NAME = 'Tessera (first-party)'

/**
 * Ensures the first-party application exists; idempotent and safe to run concurrently from
 * several replicas (a single INSERT … ON CONFLICT DO NOTHING). Returns whether it was created.
 */
export async function ensureInternalApplication (em: EntityManager): Promise<boolean> {
  const result = await em.getConnection().execute<{ affectedRows: number }>(
    `insert into applications (id, name, client_id, client_secret_hash, confidential, redirect_uris, scopes, introspection_audiences, token_format, created_at)
     values (?, ?, ?, null, false, '{}', '{}', null, 'opaque', now())
     on conflict (client_id) do nothing`,
    [uuidv7(), INTERNAL_APPLICATION_NAME, INTERNAL_CLIENT_ID],
    'run'
  )
  return result.affectedRows > 0
}

export async function findInternalApplication (em: EntityManager): Promise<Application | null> {
  return await em.findOne(Application, { clientId: INTERNAL_CLIENT_ID })
}

export interface CreateApplicationInput {
  name: string
  scopes: string[]
  confidential?: boolean
  redirectUris?: string[]
  introspectionAudiences?: string[] | null
  tokenFormat?: 'opaque' | 'jwt'
}

export interface CreatedApplication {
  application: Application
  /** The client secret in clear: returned once, never stored. Null for public clients. */
  clientSecret: string | null
}

export function generateClientSecret (prefix: string): string {
  return `${prefix}cs_${base62(40)}`
}

/** Creates an application and its audit event in `em`'s unit of work; the caller flushes. */
export async function createApplication (
  em: EntityManager,
  deps: { hasher: PasswordHasher, scopes: ScopeCatalogue, tokenPrefix: string },
  input: CreateApplicationInput,
  actor: Actor
): Promise<CreatedApplication> {
  const name = input.name.trim()
  if (name === '' || name.length > 100) throw new Errors.BadRequest('application name must be 1–100 characters')
  let scopes: string[]
  try {
    scopes = deps.scopes.validate(input.scopes)
  } catch (error) {
    // A plain UnknownScopesError has no status: callers would answer 500 instead of 400.
    if (error instanceof UnknownScopesError) throw new Errors.InvalidScope(error.message)
    throw error
  }
  const confidential = input.confidential ?? true
  const clientSecret = confidential ? generateClientSecret(deps.tokenPrefix) : null
  const application = em.create(Application, {
    id: uuidv7(),
    name,
    clientId: base62(24),
    clientSecretHash: clientSecret !== null ? await deps.hasher.hash(clientSecret) : null,
    confidential,
    redirectUris: input.redirectUris ?? [],
    scopes,
    introspectionAudiences: input.introspectionAudiences ?? null,
    tokenFormat: input.tokenFormat ?? 'opaque'
  })
  recordAudit(em, actor, 'application.created', { type: 'application', id: application.id, label: name }, { client_id: application.clientId, scopes })
  return { application, clientSecret }
}
