/**
 * The scope vocabulary: built-ins plus the deployer's own list. One place knows which
 * scopes exist, what they mean and what they imply (`write:X` implies `read:X`).
 */
export const BUILT_IN_SCOPES: Readonly<Record<string, string>> = {
  admin: 'Administer users, tokens and applications (only for admin users)',
  introspect: 'Ask whether other tokens are valid (POST /oauth/introspect)',
  'read:tokens': "Review the owner's own tokens",
  'write:tokens': "Invalidate and rotate the owner's own tokens (implies read:tokens)"
}

const SCOPE_PATTERN = /^[a-z][a-z0-9_.-]*(:[a-z0-9_.-]+)*$/

export class UnknownScopesError extends Error {
  constructor (readonly unknown: string[], readonly valid: string[]) {
    super(`unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; valid scopes are: ${valid.join(' ')}`)
  }
}

export class ScopeCatalogue {
  readonly #descriptions: Map<string, string>

  private constructor (descriptions: Map<string, string>) {
    this.#descriptions = descriptions
  }

  /** Builds the catalogue from the SCOPES setting: names separated by spaces or commas. */
  static fromConfiguration (setting: string): ScopeCatalogue {
    const descriptions = new Map(Object.entries(BUILT_IN_SCOPES))
    for (const name of setting.split(/[\s,]+/).filter(Boolean)) {
      if (!SCOPE_PATTERN.test(name) || name.length > 64) {
        throw new Error(`has an invalid scope name "${name}" (lower-case letters, digits, "_", ".", "-", separated by ":")`)
      }
      if (!descriptions.has(name)) descriptions.set(name, `Deployment scope ${name}`)
      const implied = impliedReadScope(name)
      if (implied !== undefined && !descriptions.has(implied)) descriptions.set(implied, `Deployment scope ${implied}`)
    }
    return new ScopeCatalogue(descriptions)
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
