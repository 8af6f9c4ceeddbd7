/**
 * The scope vocabulary: built-ins plus the deployer's own list. One place knows which
 * scopes exist, what they mean and what they imply (`write:X` implies `read:X`).
 */
export const BUILT_IN_SCOPES: Readonly<Record<string, string>> = {
  admin: 'Administer users, tokens and applications (only for admin users)',
  introspect: 'Ask whether other tokens are valid (POST /oauth/introspect): applications, and administrators unless PERSONAL_INTROSPECT_TOKENS says otherwise',
  'read:tokens': "Review the owner's own tokens",
  'write:tokens': "Invalidate and rotate the owner's own tokens (implies read:tokens)"
}

const SCOPE_PATTERN = /^[a-z][a-z0-9_.-]*(:[a-z0-9_.-]+)*$/

export class UnknownScopesError extends Error {
  constructor (readonly unknown: string[], readonly valid: string[]) {
    super(`unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; valid scopes are: ${valid.join(' ')}`)
  }
}

/** Who may hold a personal token with `introspect` (PERSONAL_INTROSPECT_TOKENS); applications always may. */
export type PersonalIntrospectPolicy = 'admins' | 'everyone' | 'nobody'

/**
 * Who holds a token, as far as what it may grant depends on it: a user (an administrator or not,
 * now), or an application (with the scopes it holds now).
 */
export type Holder =
  | { kind: 'user', admin: boolean }
  | { kind: 'application', scopes: readonly string[] }

export class ScopeCatalogue {
  readonly #descriptions: Map<string, string>
  readonly personalIntrospect: PersonalIntrospectPolicy

  private constructor (descriptions: Map<string, string>, personalIntrospect: PersonalIntrospectPolicy) {
    this.#descriptions = descriptions
    this.personalIntrospect = personalIntrospect
  }

  /**
   * Builds the catalogue from the SCOPES setting (names separated by spaces or commas) and the
   * PERSONAL_INTROSPECT_TOKENS policy.
   */
  static fromConfiguration (setting: string, personalIntrospect: PersonalIntrospectPolicy = 'admins'): ScopeCatalogue {
    const descriptions = new Map(Object.entries(BUILT_IN_SCOPES))
    for (const name of setting.split(/[\s,]+/).filter(Boolean)) {
      if (!SCOPE_PATTERN.test(name) || name.length > 64) {
        throw new Error(`has an invalid scope name "${name}" (lower-case letters, digits, "_", ".", "-", separated by ":")`)
      }
      if (!descriptions.has(name)) descriptions.set(name, `Deployment scope ${name}`)
      const implied = impliedReadScope(name)
      if (implied !== undefined && !descriptions.has(implied)) descriptions.set(implied, `Deployment scope ${implied}`)
    }
    return new ScopeCatalogue(descriptions, personalIntrospect)
  }

  get names (): string[] {
    return [...this.#descriptions.keys()].sort()
  }

  describe (): Array<{ name: string, description: string }> {
    return this.names.map((name) => ({ name, description: this.#descriptions.get(name) as string }))
  }

  has (scope: string): boolean {
    return this.#descriptions.has(scope)
  }

  /** Returns the requested scopes de-duplicated in request order, or throws naming the unknown ones. */
  validate (requested: readonly string[]): string[] {
    const unknown = requested.filter((scope) => !this.#descriptions.has(scope))
    if (unknown.length > 0) throw new UnknownScopesError([...new Set(unknown)], this.names)
    return [...new Set(requested)]
  }
}

/**
 * The scope among `scopes` that `holder` may not hold today, or null: `admin` for a user who is
 * not an administrator; `introspect` for a user when PERSONAL_INTROSPECT_TOKENS says so; for an
 * application, any scope it does not hold (effectively) any more.
 */
export function forbiddenScope (catalogue: ScopeCatalogue, scopes: readonly string[], holder: Holder): string | null {
  if (holder.kind === 'application') {
    const held = new Set(effectiveScopes(holder.scopes))
    return scopes.find((scope) => !held.has(scope)) ?? null
  }
  if (scopes.includes('admin') && !holder.admin) return 'admin'
  if (scopes.includes('introspect') && !mayHoldPersonalIntrospect(catalogue.personalIntrospect, holder.admin)) return 'introspect'
  return null
}

function mayHoldPersonalIntrospect (policy: PersonalIntrospectPolicy, admin: boolean): boolean {
  return policy === 'everyone' || (policy === 'admins' && admin)
}

/**
 * What a token grants now: its scopes as granted plus the implied ones, less what its holder may
 * no longer hold — a demoted administrator's `admin`, a user's `introspect` when the policy no
 * longer allows it, an application's scopes it no longer holds. Introspection, verify, token
 * info and the API all read this, so a change of rights takes effect everywhere at once.
 */
export function scopesGrantedNow (catalogue: ScopeCatalogue, granted: readonly string[], holder: Holder): string[] {
  const effective = effectiveScopes(granted)
  if (holder.kind === 'application') {
    const held = new Set(effectiveScopes(holder.scopes))
    return effective.filter((scope) => held.has(scope))
  }
  return effective.filter((scope) => !(scope === 'admin' && !holder.admin) &&
    !(scope === 'introspect' && !mayHoldPersonalIntrospect(catalogue.personalIntrospect, holder.admin)))
}

function impliedReadScope (scope: string): string | undefined {
  return scope.startsWith('write:') ? `read:${scope.slice('write:'.length)}` : undefined
}

/** The scopes a token effectively carries: as granted, plus `read:X` for every `write:X`. */
export function effectiveScopes (granted: readonly string[]): string[] {
  const result = new Set(granted)
  for (const scope of granted) {
    const implied = impliedReadScope(scope)
    if (implied !== undefined) result.add(implied)
  }
  return [...result]
}
