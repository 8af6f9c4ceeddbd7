/**
 * Where a token was validated, as metrics label it: the three endpoints that answer "is this
 * token valid?", and `api` for a bearer token authenticating a caller (the REST API, an
 * introspecting resource server).
 */
export type ValidationEndpoint = 'introspect' | 'token_info' | 'verify' | 'api'

/** What a validation endpoint concluded: a live token, anything else, or no answer (database down). */
export type ValidationOutcome = 'active' | 'inactive' | 'error'

/**
 * Plain counters the hot path bumps (an integer increment, nothing more); GET /metrics reads
 * them when scraped. Kept free of any metrics library so the services stay framework-free.
 */
export class Counters {
  readonly validation: Record<ValidationEndpoint, Record<ValidationOutcome, number>> = {
    introspect: { active: 0, inactive: 0, error: 0 },
    token_info: { active: 0, inactive: 0, error: 0 },
    verify: { active: 0, inactive: 0, error: 0 },
    api: { active: 0, inactive: 0, error: 0 }
  }

  validated (endpoint: ValidationEndpoint, outcome: ValidationOutcome): void {
    this.validation[endpoint][outcome]++
  }

  /**
   * Counts what a lookup yields: a record (active), null (inactive) or a failure (error, rethrown).
   * No async function of its own: on the hot path the lookup's promise is the only one.
   */
  outcome<T> (endpoint: ValidationEndpoint, lookup: Promise<T | null>): Promise<T | null> {
    const counts = this.validation[endpoint]
    return lookup.then((found) => {
      if (found === null) counts.inactive++
      else counts.active++
      return found
    }, (error: unknown) => {
      counts.error++
      throw error
    })
  }
}
