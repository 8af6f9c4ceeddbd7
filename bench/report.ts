import type { LoadResult } from './load.js'
import type { Memory } from './processes.js'

/** What one scenario produced (also the shape written to the JSON file). */
export interface ScenarioOutcome {
  name: string
  description: string
  ok: boolean
  error?: string
  server: { command: string[], env: Record<string, string> }
  /** The server's memory once it answered, before any load. */
  idleMemory: Memory | null
  /** The server's memory right after the load. */
  memory: Memory | null
  /** …and after the scenario's settleSeconds without load, when it has some. */
  settledMemory?: Memory | null
  load?: LoadResult
  seconds: number
}

export interface Figures {
  reqPerSec: number
  p50: number
  p99: number
  rssMb: number
  peakMb: number
  idleMb: number
  serverCpu: number
  loadCpu: number
  /**
   * req/s per core the server used (req/s ÷ its CPU share): what it would do with a core of its
   * own. Far steadier than req/s on a shared machine, but blind to work done outside the
   * server's process (a PostgreSQL server's).
   */
  perCore: number
}

export function figuresOf (outcome: ScenarioOutcome | undefined): Figures | null {
  const result = outcome?.load?.result
  const latency = outcome?.load?.latencyMs
  if (outcome === undefined || !outcome.ok || result === undefined || latency === undefined) return null
  const serverCpu = outcome.load?.cpuPercent?.server ?? Number.NaN
  return {
    reqPerSec: result.requests.mean,
    p50: latency.p50,
    p99: latency.p99,
    rssMb: outcome.memory?.rssMb ?? Number.NaN,
    peakMb: outcome.memory?.peakMb ?? Number.NaN,
    idleMb: outcome.idleMemory?.rssMb ?? Number.NaN,
    serverCpu,
    loadCpu: outcome.load?.cpuPercent?.loadGenerator ?? Number.NaN,
    perCore: serverCpu > 0 ? result.requests.mean / (serverCpu / 100) : Number.NaN
  }
}

export interface Ratio {
  check: string
  value: number | null
  target: string
  /** On `value`; null when a figure is missing. */
  pass: boolean | null
  /** The same ratio of req/s per server core (informative: see Figures.perCore). */
  perCoreValue?: number | null
}

type Pick = (name: string) => Figures | null

function divide (numerator: number | undefined, denominator: number | undefined): number | null {
  return numerator === undefined || denominator === undefined || denominator === 0 || Number.isNaN(numerator) || Number.isNaN(denominator) ? null : numerator / denominator
}

function ratio (check: string, numerator: number | undefined, denominator: number | undefined, target: number, atLeast: boolean): Ratio {
  const value = divide(numerator, denominator)
  return { check, value, target: `${atLeast ? '≥' : '≤'} ${target}`, pass: value === null ? null : atLeast ? value >= target : value <= target }
}

/** A throughput ratio, on req/s (the target) and on req/s per server core (to see through a busy machine). */
function rateRatio (pick: Pick, check: string, numerator: string, denominator: string, target: number): Ratio {
  return {
    ...ratio(check, pick(numerator)?.reqPerSec, pick(denominator)?.reqPerSec, target, true),
    perCoreValue: divide(pick(numerator)?.perCore, pick(denominator)?.perCore)
  }
}

/** The targets of issue 6: how close Tessera's hot path comes to the floor, and to its peer. */
export function ratios (pick: Pick): Ratio[] {
  const cacheFull = pick('tessera-cache-full')
  return [
    rateRatio(pick, 'introspect-cached / bare-post  (req/s)', 'tessera-introspect-cached', 'bare-post', 0.8),
    rateRatio(pick, 'token-info-cached / bare-get   (req/s)', 'tessera-token-info-cached', 'bare-get', 0.8),
    rateRatio(pick, 'verify-cached / bare-get       (req/s)', 'tessera-verify-cached', 'bare-get', 0.8),
    ratio('introspect-cached / bare-post  (p99)', pick('tessera-introspect-cached')?.p99, pick('bare-post')?.p99, 1.5, false),
    rateRatio(pick, 'introspect-miss / bare-pg      (req/s)', 'tessera-introspect-miss', 'bare-pg', 0.8),
    rateRatio(pick, 'introspect-cached / oidc-provider (req/s)', 'tessera-introspect-cached', 'oidc-provider', 3.5),
    {
      check: 'cache-full RSS (MB)',
      value: cacheFull === null ? null : cacheFull.rssMb,
      target: '≤ 256',
      pass: cacheFull === null || Number.isNaN(cacheFull.rssMb) ? null : cacheFull.rssMb <= 256
    }
  ]
}

function table (header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => {
    const width = widths[column] ?? 0
    return rightAligned.has(column) ? cell.padStart(width) : cell.padEnd(width)
  }).join('  ').trimEnd()
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n')
}

const fixed = (value: number, digits: number): string => Number.isFinite(value) ? value.toFixed(digits) : 'n/a'

export function renderReport (outcomes: ScenarioOutcome[], checks: Ratio[]): string {
  const rows = outcomes.map((outcome) => {
    const figures = figuresOf(outcome)
    if (figures === null) return [outcome.name, 'FAILED', '', '', '', '', '', '', '']
    return [outcome.name, fixed(figures.reqPerSec, 0), fixed(figures.p50, 2), fixed(figures.p99, 2), fixed(figures.rssMb, 1), fixed(figures.peakMb, 1), fixed(figures.idleMb, 1),
      `${fixed(figures.serverCpu, 0)}/${fixed(figures.loadCpu, 0)}`, fixed(figures.perCore, 0)]
  })
  const scenarioTable = table(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'RSS MB', 'peak MB', 'idle MB', 'CPU% srv/gen', 'req/s/core'], rows, new Set([1, 2, 3, 4, 5, 6, 7, 8]))
  const ratioRows = checks.map((check) => [
    check.check,
    check.value === null ? 'n/a' : fixed(check.value, check.check.startsWith('cache-full') ? 1 : 2),
    check.target,
    check.pass === null ? '—' : check.pass ? 'PASS' : 'MISS',
    check.perCoreValue === undefined ? '' : check.perCoreValue === null ? 'n/a' : fixed(check.perCoreValue, 2)
  ])
  const ratioTable = table(['target', 'value', 'goal', 'result', 'per core'], ratioRows, new Set([1, 4]))
  const notes = caveats(outcomes)
  return `${scenarioTable}\n\n${ratioTable}\n${notes.length > 0 ? `\n${notes.map((note) => `note: ${note}`).join('\n')}\n` : ''}`
}

/** Server CPU share below which a scenario was not limited by the server itself. */
const SERVER_BOUND = 80
/** Load generator CPU share above which it, not the server, may have set the pace. */
const GENERATOR_BOUND = 90

/**
 * What makes figures untrustworthy, said next to them: a server that did not use its core
 * (other work on the machine took it, or it waited on the database), or a load generator that
 * ran out of its own.
 */
export function caveats (outcomes: ScenarioOutcome[]): string[] {
  const idle: string[] = []
  const generatorBound: string[] = []
  for (const outcome of outcomes) {
    const figures = figuresOf(outcome)
    if (figures === null) continue
    if (figures.loadCpu >= GENERATOR_BOUND) generatorBound.push(outcome.name)
    else if (figures.serverCpu < SERVER_BOUND) idle.push(`${outcome.name} ${fixed(figures.serverCpu, 0)}%`)
  }
  const notes: string[] = []
  if (idle.length > 0) notes.push(`server below ${SERVER_BOUND}% of its core (${idle.join(', ')}): other processes took the core, or it waited on the database; compare these figures with care`)
  if (generatorBound.length > 0) notes.push(`load generator at ≥ ${GENERATOR_BOUND}% of its core (${generatorBound.join(', ')}): these req/s are lower bounds`)
  return notes
}
