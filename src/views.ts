import { wrap } from '@mikro-orm/core'
import type { AccessToken } from './entities/access-token.js'
import type { Application } from './entities/application.js'
import type { AuditEvent } from './entities/audit-event.js'
import type { User } from './entities/user.js'
import { isInternal } from './services/applications.js'
import { effectiveScopes, scopesGrantedNow, type Holder, type ScopeCatalogue } from './services/scopes.js'
import { tokenState } from './services/token-management.js'
import type { IssuedToken } from './services/tokens.js'

/**
 * How the API shows each thing: the one place an entity becomes JSON. The response schemas in
 * schemas/ describe these shapes; neither ever carries a secret except where a secret is shown
 * once (serializeCreatedToken).
 */

/**
 * A token as listings show it: never its secret or digest. `scopes` as granted; `effective_scopes`
 * what it grants now (implied scopes, less what its holder may no longer hold).
 */
export function toTokenView (token: AccessToken, catalogue: ScopeCatalogue, now = new Date()) {
  const application = wrap(token.application).isInitialized() ? token.application : undefined
  const owner = token.user != null && wrap(token.user).isInitialized() ? token.user : undefined
  const holder: Holder | null = owner !== undefined
    ? { kind: 'user', admin: owner.admin }
    : token.user == null && application !== undefined ? { kind: 'application', scopes: application.scopes } : null
  const lastUsed = token.lastUsedAt?.toISOString() ?? null
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    scope: token.scopes.join(' '),
    effective_scopes: holder === null ? effectiveScopes(token.scopes) : scopesGrantedNow(catalogue, token.scopes, holder),
    audience: token.audience ?? null,
    application: { name: application?.name ?? '', client_id: application?.clientId ?? '' },
    owner: owner !== undefined ? { id: owner.id, username: owner.username } : null,
    token_last_eight: token.lastEight,
    state: tokenState(token, now),
    created_at: token.createdAt.toISOString(),
    created_by: token.createdBy?.id ?? null,
    expires_at: token.expiresAt?.toISOString() ?? null,
    revoked_at: token.revokedAt?.toISOString() ?? null,
    last_used: lastUsed,
    last_used_at: lastUsed,
    last_used_ip: token.lastUsedIp ?? null,
    rotated_from: token.rotatedFrom ?? null
  }
}

export type TokenView = ReturnType<typeof toTokenView>

/** The one-time answer to a token creation or rotation: the plaintext under `token` and Forgejo's `sha1`. */
export function serializeCreatedToken ({ token, plaintext }: IssuedToken) {
  return {
    id: token.id,
    name: token.name,
    sha1: plaintext,
    token: plaintext,
    token_last_eight: token.lastEight,
    scopes: token.scopes,
    audience: token.audience ?? null,
    created_at: token.createdAt.toISOString(),
    expires_at: token.expiresAt?.toISOString() ?? null
  }
}

export function toUserView (user: User) {
  return {
    id: user.id,
    username: user.username,
    email: user.email ?? null,
    admin: user.admin,
    suspended: user.suspendedAt != null,
    suspended_at: user.suspendedAt?.toISOString() ?? null,
    created_at: user.createdAt.toISOString()
  }
}

export function toApplicationView (application: Application) {
  return {
    id: application.id,
    name: application.name,
    client_id: application.clientId,
    confidential: application.confidential,
    redirect_uris: application.redirectUris,
    scopes: application.scopes,
    introspection_audiences: application.introspectionAudiences ?? null,
    introspection_scopes: application.introspectionScopes ?? null,
    token_format: application.tokenFormat,
    internal: isInternal(application),
    created_at: application.createdAt.toISOString()
  }
}

export function toAuditView (event: AuditEvent) {
  return {
    id: event.id,
    created_at: event.createdAt.toISOString(),
    actor: event.actor,
    actor_id: event.actorId ?? null,
    action: event.action,
    target_type: event.targetType ?? null,
    target_id: event.targetId ?? null,
    target: event.target ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent ?? null,
    details: event.details ?? null
  }
}
