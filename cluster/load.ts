/**
 * Steady client load through nginx for the whole cluster test, by autocannon: introspection
 * through the load balancer and requests through the `auth_request` gateway, each at a fixed
 * rate, cycling over tokens that stay valid throughout. Every answer is tallied, so a phase can
 * ask what clients saw while it ran.
 */
import autocannon from 'autocannon'

export interface Tally {
  requests: number
  ok: number
  /** Answers that were not 2xx, by status. */
  statuses: Record<string, number>
  /** Requests that got no answer (connection refused or reset, timeouts). */
  errors: number
  /** Those by target and error code (`gateway: ECONNRESET`). */
  errorsBy: Record<string, number>
  /** The first few failures, to explain one. */
  samples: string[]
}

export interface LoadTarget {
  name: string
  url: string
  method: 'GET' | 'POST'
  /** Headers and body for one request carrying `token`. */
  request: (token: string) => { headers: Record<string, string>, body?: string }
  /** Requests a second, for this target. */
  rate: number
}

function emptyTally (): Tally {
  return { requests: 0, ok: 0, statuses: {}, errors: 0, errorsBy: {}, samples: [] }
}

/** `after` minus `before`. */
export function difference (after: Tally, before: Tally): Tally {
  const statuses: Record<string, number> = {}
  for (const [status, count] of Object.entries(after.statuses)) {
    const delta = count - (before.statuses[status] ?? 0)
    if (delta > 0) statuses[status] = delta
  }
  const errorsBy: Record<string, number> = {}
  for (const [kind, count] of Object.entries(after.errorsBy)) {
    const delta = count - (before.errorsBy[kind] ?? 0)
    if (delta > 0) errorsBy[kind] = delta
  }
  return {
    requests: after.requests - before.requests,
    ok: after.ok - before.ok,
    statuses,
    errors: after.errors - before.errors,
    errorsBy,
    samples: after.samples.slice(before.samples.length)
  }
}

export function failures (tally: Tally): number {
  return tally.requests - tally.ok
}

export function describe (tally: Tally): string {
  const statuses = Object.entries(tally.statuses).map(([status, count]) => `${count}×${status}`).join(', ')
  const first = tally.samples.length === 0 ? '' : `; first: ${tally.samples.slice(0, 3).join('; ')}`
  return `${tally.requests} requests, ${tally.ok} 2xx${statuses === '' ? '' : `, ${statuses}`}${tally.errors > 0 ? `, ${tally.errors} without an answer (${JSON.stringify(tally.errorsBy)})` : ''}${first}`
}

export class Load {
  readonly #tally = emptyTally()
  readonly #instances: autocannon.Instance[] = []
  readonly #done: Array<Promise<unknown>> = []

  constructor (targets: LoadTarget[], tokens: string[], options: { connections: number }) {
    let next = 0
    for (const target of targets) {
      let finished: () => void = () => {}
      this.#done.push(new Promise<void>((resolve) => { finished = resolve }))
      const instance = autocannon({
        url: target.url,
        connections: options.connections,
        overallRate: target.rate,
        // Runs until stopped; a request unanswered for 10 s counts as failed.
        duration: 3600,
        timeout: 10,
        requests: [{
          method: target.method,
          setupRequest: (request) => {
            const token = tokens[next++ % tokens.length]!
            const { headers, body } = target.request(token)
            return { ...request, method: target.method, headers, ...(body === undefined ? {} : { body }) }
          }
        }]
      }, () => { finished() })
      instance.on('response', (_client, statusCode) => {
        this.#tally.requests++
        if (statusCode >= 200 && statusCode < 300) this.#tally.ok++
        else {
          this.#tally.statuses[statusCode] = (this.#tally.statuses[statusCode] ?? 0) + 1
          if (this.#tally.samples.length < 1000) this.#tally.samples.push(`${target.name}: HTTP ${statusCode} at ${new Date().toISOString()}`)
        }
      })
      instance.on('reqError', (error: Error & { code?: string }) => {
        this.#tally.requests++
        this.#tally.errors++
        const kind = `${target.name}: ${error.code ?? error.message}`
        this.#tally.errorsBy[kind] = (this.#tally.errorsBy[kind] ?? 0) + 1
        if (this.#tally.samples.length < 1000) this.#tally.samples.push(`${target.name}: ${error.message} at ${new Date().toISOString()}`)
      })
      this.#instances.push(instance)
    }
  }

  /** What clients have seen so far (a copy). */
  snapshot (): Tally {
    return { ...this.#tally, statuses: { ...this.#tally.statuses }, errorsBy: { ...this.#tally.errorsBy }, samples: [...this.#tally.samples] }
  }

  async stop (): Promise<Tally> {
    for (const instance of this.#instances) instance.stop()
    await Promise.all(this.#done)
    return this.snapshot()
  }
}
