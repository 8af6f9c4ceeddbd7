/**
 * The load generator, a child process of its own (pinned to the core the servers do not use):
 * `node --import tsx bench/load.ts SPEC.json RESULT.json`. It checks that the server answers
 * correctly, warms it up, then measures it with autocannon, and writes what it saw to RESULT.json.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import autocannon from 'autocannon'
import { benchToken } from './tokens.js'

/** Which token each request carries. */
export type TokenSource =
  | { kind: 'literal', value: string }
  /** Seeded token number `index`, on every request (the warm-cache scenarios). */
  | { kind: 'seeded', index: number }
  /** Seeded tokens 0, 1, 2 … count-1, then 0 again: a different token on every request. */
  | { kind: 'cycle', count: number }

export interface LoadSpec {
  origin: string
  method: 'GET' | 'POST'
  path: string
  /** Sent with every request (e.g. the caller's Basic credentials). */
  headers: Record<string, string>
  /** Where the token goes: the form body `token=…`, or `Authorization: Bearer …`. */
  tokenIn: 'form' | 'bearer'
  token: TokenSource
  /** Every answer must be a 2xx whose body contains this. */
  expect: string
  connections: number
  warmupSeconds: number
  durationSeconds: number
  /** Send exactly this many requests instead of running for a duration (and skip the warm-up). */
  amount?: number
  /** The server's pid, to read how busy it was during the measured run (Linux). */
  serverPid?: number
}

export interface LatencySummary {
  count: number
  mean: number
  p50: number
  p90: number
  p99: number
  max: number
}

export interface LoadResult {
  ok: boolean
  error?: string
  /** Requests that answered as expected before the load started. */
  checked: number
  /** Distinct tokens the server was asked about during the whole run (checks and warm-up included). */
  distinctTokens?: number
  /** Latency of every measured 2xx answer, in ms with microsecond precision (autocannon's own histogram keeps whole ms). */
  latencyMs?: LatencySummary
  /**
   * Share of one core each side used during the measured run, in %. The server near 100 means
   * it was the bottleneck, as intended; the load generator near 100 means it was, and the
   * server's figure is a lower bound.
   */
  cpuPercent?: { server: number | null, loadGenerator: number }
  warmup?: autocannon.Result
  result?: autocannon.Result
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU seconds a process has used so far (user + system), from /proc; null when unreadable. */
function cpuSecondsOf (pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return null
  }
}

/** Next token for each request; for 'cycle' one shared counter serves every connection. */
function tokenStream (source: TokenSource): { next: () => string, distinct: () => number } {
  if (source.kind === 'literal') return { next: () => source.value, distinct: () => 1 }
  if (source.kind === 'seeded') {
    const token = benchToken(source.index)
    return { next: () => token, distinct: () => 1 }
  }
  let sent = 0
  return {
    next: () => benchToken(sent++ % source.count),
    // Over the whole run (checks and warm-up included): what the server has seen.
    distinct: () => Math.min(sent, source.count)
  }
}

function requestParts (spec: LoadSpec, token: string): { headers: Record<string, string>, body?: string } {
  if (spec.tokenIn === 'bearer') return { headers: { ...spec.headers, authorization: `Bearer ${token}` } }
  return { headers: { ...spec.headers, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` }
}

/** A few requests by hand first: a server that answers wrongly must fail the scenario, not be measured. */
async function check (spec: LoadSpec, next: () => string): Promise<number> {
  const rounds = 3
  for (let i = 0; i < rounds; i++) {
    const { headers, body } = requestParts(spec, next())
    const response = await fetch(spec.origin + spec.path, { method: spec.method, headers, body, signal: AbortSignal.timeout(30_000) })
    const text = await response.text()
    if (response.status < 200 || response.status > 299 || !text.includes(spec.expect)) {
      throw new Error(`${spec.method} ${spec.path} answered ${response.status} ${text.slice(0, 300)} (expected a 2xx containing ${spec.expect})`)
    }
  }
  return rounds
}

/** Grows as needed; one slot per measured answer. */
class Samples {
  #values = new Float64Array(1 << 16)
  #length = 0

  add (value: number): void {
    if (this.#length === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2)
      bigger.set(this.#values)
      this.#values = bigger
    }
    this.#values[this.#length++] = value
  }

  summary (): LatencySummary {
    const sorted = this.#values.slice(0, this.#length).sort()
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
    let total = 0
    for (const value of sorted) total += value
    return { count: sorted.length, mean: total / sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
  }
}

async function cannon (spec: LoadSpec, next: () => string, phase: { seconds?: number, amount?: number }, samples?: Samples): Promise<autocannon.Result> {
  // The default request; when tokens cycle, setupRequest replaces it (so it takes no token from the stream).
  const first = requestParts(spec, spec.token.kind === 'cycle' ? benchToken(0) : next())
  const options: autocannon.Options = {
    url: spec.origin + spec.path,
    method: spec.method,
    connections: spec.connections,
    headers: first.headers,
    body: first.body,
    timeout: 10,
    verifyBody: (body) => typeof body === 'string' && body.includes(spec.expect),
    ...(phase.amount !== undefined ? { amount: phase.amount } : { duration: phase.seconds ?? 1 })
  }
  if (spec.token.kind === 'cycle') {
    options.requests = [{
      setupRequest: (request) => {
        const parts = requestParts(spec, next())
        request.headers = parts.headers
        if (parts.body !== undefined) request.body = parts.body
        return request
      }
    }]
  }
  return await new Promise((resolve, reject) => {
    const instance = autocannon(options, (error: unknown, result) => {
      if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)))
      else resolve(result)
    })
    if (samples !== undefined) {
      instance.on('response', (_client, statusCode, _bytes, responseTime) => {
        if (statusCode >= 200 && statusCode < 300) samples.add(responseTime)
      })
    }
  })
}

/** Why a run cannot be trusted, or null. */
function problems (result: autocannon.Result, phase: string): string | null {
  const found: string[] = []
  if (result.non2xx > 0) found.push(`${result.non2xx} non-2xx answers (${JSON.stringify(result.statusCodeStats)})`)
  if (result.errors > 0) found.push(`${result.errors} errors`)
  if (result.timeouts > 0) found.push(`${result.timeouts} timeouts`)
  if (result.mismatches > 0) found.push(`${result.mismatches} answers without the expected body`)
  if (result.requests.total === 0) found.push('no request completed')
  return found.length === 0 ? null : `${phase}: ${found.join(', ')}`
}

export async function runLoad (spec: LoadSpec): Promise<LoadResult> {
  const stream = tokenStream(spec.token)
  const outcome: LoadResult = { ok: false, checked: 0 }
  try {
    outcome.checked = await check(spec, stream.next)
    if (spec.amount === undefined && spec.warmupSeconds > 0) {
      outcome.warmup = await cannon(spec, stream.next, { seconds: spec.warmupSeconds })
      const trouble = problems(outcome.warmup, 'warm-up')
      if (trouble !== null) throw new Error(trouble)
    }
    const samples = new Samples()
    const phase = spec.amount !== undefined ? { amount: spec.amount } : { seconds: spec.durationSeconds }
    const serverBefore = cpuSecondsOf(spec.serverPid)
    const ownBefore = process.cpuUsage()
    const startedAt = performance.now()
    outcome.result = await cannon(spec, stream.next, phase, samples)
    const wall = (performance.now() - startedAt) / 1000
    const own = process.cpuUsage(ownBefore)
    const serverAfter = cpuSecondsOf(spec.serverPid)
    outcome.cpuPercent = {
      server: serverBefore === null || serverAfter === null ? null : 100 * (serverAfter - serverBefore) / wall,
      loadGenerator: 100 * (own.user + own.system) / 1e6 / wall
    }
    outcome.latencyMs = samples.summary()
    if (spec.token.kind === 'cycle') outcome.distinctTokens = stream.distinct()
    const trouble = problems(outcome.result, 'measured run')
    if (trouble !== null) throw new Error(trouble)
    outcome.ok = true
  } catch (error) {
    outcome.error = (error as Error).message
  }
  return outcome
}

// As a child process (not when imported): read the spec, run it, write the result.
const [specPath, resultPath] = process.argv.slice(2)
if (process.argv[1] === import.meta.filename && specPath !== undefined && resultPath !== undefined) {
  const spec = JSON.parse(await readFile(specPath, 'utf8')) as LoadSpec
  const outcome = await runLoad(spec)
  await writeFile(resultPath, JSON.stringify(outcome))
  process.exitCode = outcome.ok ? 0 : 1
}
