import type { EntityManager } from '@mikro-orm/core'
import { Application } from '../entities/application.js'
import { Errors } from '../errors.js'
import { recordAudit, type Actor } from './audit.js'
import { displayName } from './display-text.js'
import { uuidv7 } from './ids.js'
import type { PasswordHasher } from './passwords.js'
import { UnknownScopesError, type ScopeCatalogue } from './scopes.js'
import { base62 } from './token-format.js'

/** The client_id of the built-in first-party application that owns personal access tokens. */
export const INTERNAL_CLIENT_ID = 'internal'
const INTERNAL_APPLICATION_NAME = 'Tessera (first-party)'

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
  introspectionScopes?: string[] | null
  tokenFormat?: 'opaque' | 'jwt'
}

export interface CreatedApplication {
  application: Application
  /** The client secret in clear: returned once, never stored. Null for public clients. */
  clientSecret: string | null
}

function generateClientSecret (prefix: string): string {
  return `${prefix}cs_${base62(40)}`
}

/** Creates an application and its audit event in `em`'s unit of work; the caller flushes. */
export async function createApplication (
  em: EntityManager,
  deps: { hasher: PasswordHasher, scopes: ScopeCatalogue, tokenPrefix: string },
  input: CreateApplicationInput,
  actor: Actor
): Promise<CreatedApplication> {
  const name = displayName(input.name, 'name')
  if (name === '' || name.length > 100) throw new Errors.InvalidApplicationName()
  const scopes = validateScopes(deps.scopes, input.scopes)
  const redirectUris = assertRedirectUris(input.redirectUris ?? [])
  const confidential = input.confidential ?? true
  const clientSecret = confidential ? generateClientSecret(deps.tokenPrefix) : null
  const application = em.create(Application, {
    id: uuidv7(),
    name,
    clientId: base62(24),
    clientSecretHash: clientSecret !== null ? await deps.hasher.hash(clientSecret) : null,
    confidential,
    redirectUris,
    scopes,
    introspectionAudiences: normaliseAudiences(input.introspectionAudiences),
    introspectionScopes: introspectionScopeLimit(deps.scopes, input.introspectionScopes),
    tokenFormat: input.tokenFormat ?? 'opaque'
  })
  recordAudit(em, actor, 'application.created', { type: 'application', id: application.id, label: name }, { client_id: application.clientId, scopes })
  return { application, clientSecret }
}

export interface ApplicationPatch {
  name?: string
  scopes?: string[]
  redirect_uris?: string[]
  introspection_audiences?: string[] | null
  introspection_scopes?: string[] | null
  token_format?: 'opaque' | 'jwt'
}

export function isInternal (application: Application): boolean {
  return application.clientId === INTERNAL_CLIENT_ID
}

/** RFC 6749 §3.1.2: a redirection URI is absolute and has no fragment. */
function assertRedirectUris (uris: readonly string[]): string[] {
  for (const uri of uris) {
    let parsed: URL
    try {
      parsed = new URL(uri)
    } catch {
      throw new Errors.RedirectUriNotAbsolute(uri.slice(0, 100))
    }
    if (parsed.hash !== '' || uri.includes('#')) throw new Errors.RedirectUriFragment(uri.slice(0, 100))
  }
  return [...new Set(uris)]
}

function validateScopes (catalogue: ScopeCatalogue, scopes: string[]): string[] {
  try {
    return catalogue.validate(scopes)
  } catch (error) {
    if (error instanceof UnknownScopesError) throw new Errors.InvalidScope(error.message)
    throw error
  }
}

function normaliseAudiences (audiences: string[] | null | undefined): string[] | null {
  if (audiences == null || audiences.length === 0) return null
  return [...new Set(audiences)]
}

/** Applies an admin's change to an application with its audit event, in `em`'s transaction. */
export function updateApplication (em: EntityManager, catalogue: ScopeCatalogue, application: Application, patch: ApplicationPatch, actor: Actor): void {
  if (isInternal(application)) throw new Errors.InternalApplicationProtected('cannot be changed')
  const changed: string[] = []
  if (patch.name !== undefined) {
    const name = displayName(patch.name, 'name')
    if (name === '' || name.length > 100) throw new Errors.InvalidApplicationName()
    application.name = name
    changed.push('name')
  }
  if (patch.scopes !== undefined) {
    application.scopes = validateScopes(catalogue, patch.scopes)
    changed.push('scopes')
  }
  if (patch.redirect_uris !== undefined) {
    application.redirectUris = assertRedirectUris(patch.redirect_uris)
    changed.push('redirect_uris')
  }
  if (patch.introspection_audiences !== undefined) {
    application.introspectionAudiences = normaliseAudiences(patch.introspection_audiences)
    changed.push('introspection_audiences')
  }
  if (patch.introspection_scopes !== undefined) {
    application.introspectionScopes = introspectionScopeLimit(catalogue, patch.introspection_scopes)
    changed.push('introspection_scopes')
  }
  if (patch.token_format !== undefined) {
    application.tokenFormat = patch.token_format
    changed.push('token_format')
  }
  recordAudit(em, actor, 'application.updated', { type: 'application', id: application.id, label: application.name }, { changed })
}

/** Deletes an application; its tokens go with it (foreign key cascade). */
export function deleteApplication (em: EntityManager, application: Application, actor: Actor): void {
  if (isInternal(application)) throw new Errors.InternalApplicationProtected('owns personal tokens and cannot be deleted')
  recordAudit(em, actor, 'application.deleted', { type: 'application', id: application.id, label: application.name }, { client_id: application.clientId })
  em.remove(application)
}

/** Generates a new client secret (the old one stops working); returns it in clear, once. */
export async function rotateClientSecret (em: EntityManager, hasher: PasswordHasher, prefix: string, application: Application, actor: Actor): Promise<string> {
  if (isInternal(application)) throw new Errors.InternalApplicationProtected('has no client secret')
  if (!application.confidential) throw new Errors.PublicClientHasNoSecret()
  const secret = generateClientSecret(prefix)
  application.clientSecretHash = await hasher.hash(secret)
  recordAudit(em, actor, 'application.secret_rotated', { type: 'application', id: application.id, label: application.name }, { client_id: application.clientId })
  return secret
}

/** The scopes an application may see on the tokens it introspects (known scopes; empty: no limit). */
function introspectionScopeLimit (catalogue: ScopeCatalogue, scopes: string[] | null | undefined): string[] | null {
  if (scopes == null || scopes.length === 0) return null
  return validateScopes(catalogue, scopes)
}
