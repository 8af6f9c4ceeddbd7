import type { LoadResult } from './load.js'
import type { Memory } from './processes.js'

/** What one scenario produced (also the shape written to the JSON file). */
export interface ScenarioOutcome {
  name: string
  /** Which of the interleaved runs (1 …) this outcome belongs to. */
  run: number
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

/** A figure shown for insight, without a target: the gaps between floor, necessary work and Tessera. */
function insight (check: string, numerator: number | undefined, denominator: number | undefined): Ratio {
  return { check, value: divide(numerator, denominator), target: '—', pass: null }
}

/**
 * The targets of issue 13 against the honest floor (bare Fastify, logger off), then the figures
 * that show where the gap is: the minimal implementation (necessary work only) against the floor
 * and Tessera against the minimal implementation.
 */
export function ratios (pick: Pick): Ratio[] {
  const cacheFull = pick('tessera-cache-full')
  const idle = pick('tessera-introspect-cached') ?? pick('tessera-token-info-cached')
  return [
    rateRatio(pick, 'introspect-cached / bare-post  (req/s)', 'tessera-introspect-cached', 'bare-post', 0.85),
    rateRatio(pick, 'token-info-cached / bare-get   (req/s)', 'tessera-token-info-cached', 'bare-get', 0.85),
    rateRatio(pick, 'verify-cached / bare-get       (req/s)', 'tessera-verify-cached', 'bare-get', 0.8),
    ratio('introspect-cached / bare-post  (p99)', pick('tessera-introspect-cached')?.p99, pick('bare-post')?.p99, 1.5, false),
    rateRatio(pick, 'introspect-miss / bare-pg      (req/s)', 'tessera-introspect-miss', 'bare-pg', 0.8),
    rateRatio(pick, 'introspect-cached / oidc-provider (req/s)', 'tessera-introspect-cached', 'oidc-provider', 3.5),
    {
      check: 'cache-full RSS (MB)',
      value: cacheFull === null ? null : cacheFull.rssMb,
      target: '≤ 256',
      pass: cacheFull === null || Number.isNaN(cacheFull.rssMb) ? null : cacheFull.rssMb <= 256
    },
    {
      check: 'idle RSS (MB)',
      value: idle === null ? null : idle.idleMb,
      target: '≤ 120',
      pass: idle === null || Number.isNaN(idle.idleMb) ? null : idle.idleMb <= 120
    },
    insight('minimal-post / bare-post       (req/s)', pick('minimal-post')?.reqPerSec, pick('bare-post')?.reqPerSec),
    insight('introspect-cached / minimal-post (req/s)', pick('tessera-introspect-cached')?.reqPerSec, pick('minimal-post')?.reqPerSec),
    insight('token-info-cached / minimal-get (req/s)', pick('tessera-token-info-cached')?.reqPerSec, pick('minimal-get')?.reqPerSec),
    insight('bare-post-logger / bare-post   (req/s)', pick('bare-post-logger')?.reqPerSec, pick('bare-post')?.reqPerSec)
  ]
}

/** A ratio over several interleaved runs: the median is the figure (and what PASS/MISS judges), with every run's value. */
export interface RatioSummary extends Ratio {
  runs: Array<number | null>
  min: number | null
  max: number | null
}

export function median (values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] ?? null : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

/** Each check's median over the runs (runs[i] holds run i's ratios, in the same order). */
export function summarize (runs: Ratio[][]): RatioSummary[] {
  const first = runs[0] ?? []
  return first.map((template, index) => {
    const values = runs.map((run) => run[index]?.value ?? null)
    const present = values.filter((value): value is number => value !== null)
    const perCore = runs.map((run) => run[index]?.perCoreValue ?? null).filter((value): value is number => value !== null)
    const value = median(present)
    const atLeast = template.target.startsWith('≥')
    const bound = Number(template.target.slice(2))
    return {
      check: template.check,
      value,
      target: template.target,
      pass: value === null || template.target === '—' ? null : atLeast ? value >= bound : value <= bound,
      ...(template.perCoreValue !== undefined ? { perCoreValue: median(perCore) } : {}),
      runs: values,
      min: present.length > 0 ? Math.min(...present) : null,
      max: present.length > 0 ? Math.max(...present) : null
    }
  })
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

/** Each scenario's figures, as the median over the runs where it succeeded (null when it never did). */
export function medianFigures (outcomes: ScenarioOutcome[], name: string): Figures | null {
  const all = outcomes.filter((outcome) => outcome.name === name).map(figuresOf).filter((figures): figures is Figures => figures !== null)
  if (all.length === 0) return null
  const of = (key: keyof Figures): number => median(all.map((figures) => figures[key]).filter((value) => !Number.isNaN(value))) ?? Number.NaN
  return {
    reqPerSec: of('reqPerSec'),
    p50: of('p50'),
    p99: of('p99'),
    rssMb: of('rssMb'),
    peakMb: of('peakMb'),
    idleMb: of('idleMb'),
    serverCpu: of('serverCpu'),
    loadCpu: of('loadCpu'),
    perCore: of('perCore')
  }
}

export function renderReport (outcomes: ScenarioOutcome[], checks: RatioSummary[]): string {
  const names = [...new Set(outcomes.map((outcome) => outcome.name))]
  const runCount = Math.max(1, ...checks.map((check) => check.runs.length))
  const rows = names.map((name) => {
    const figures = medianFigures(outcomes, name)
    if (figures === null) return [name, 'FAILED', '', '', '', '', '', '', '', '']
    const each = outcomes.filter((outcome) => outcome.name === name).map((outcome) => figuresOf(outcome)?.reqPerSec ?? Number.NaN)
    const spread = each.length > 1 ? `${fixed(Math.min(...each), 0)}–${fixed(Math.max(...each), 0)}` : ''
    return [name, fixed(figures.reqPerSec, 0), spread, fixed(figures.p50, 2), fixed(figures.p99, 2), fixed(figures.rssMb, 1), fixed(figures.peakMb, 1), fixed(figures.idleMb, 1),
      `${fixed(figures.serverCpu, 0)}/${fixed(figures.loadCpu, 0)}`, fixed(figures.perCore, 0)]
  })
  const scenarioTable = table(['scenario', 'req/s', 'runs min–max', 'p50 ms', 'p99 ms', 'RSS MB', 'peak MB', 'idle MB', 'CPU% srv/gen', 'req/s/core'], rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]))
  const digits = (check: Ratio): number => check.check.includes('RSS') ? 1 : 2
  const ratioRows = checks.map((check) => [
    check.check,
    check.value === null ? 'n/a' : fixed(check.value, digits(check)),
    check.runs.length > 1 ? check.runs.map((value) => value === null ? 'n/a' : fixed(value, digits(check))).join(' ') : '',
    check.target,
    check.pass === null ? '—' : check.pass ? 'PASS' : 'MISS',
    check.perCoreValue === undefined ? '' : check.perCoreValue === null ? 'n/a' : fixed(check.perCoreValue, 2)
  ])
  const ratioTable = table([runCount > 1 ? `median of ${runCount} interleaved runs` : 'target', 'value', 'each run', 'goal', 'result', 'per core'], ratioRows, new Set([1, 5]))
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
    const label = `${outcome.name} (run ${outcome.run})`
    if (figures.loadCpu >= GENERATOR_BOUND) generatorBound.push(label)
    else if (figures.serverCpu < SERVER_BOUND) idle.push(`${label} ${fixed(figures.serverCpu, 0)}%`)
  }
  const notes: string[] = []
  if (idle.length > 0) notes.push(`server below ${SERVER_BOUND}% of its core (${idle.join(', ')}): other processes took the core, or it waited on the database; compare these figures with care`)
  if (generatorBound.length > 0) notes.push(`load generator at ≥ ${GENERATOR_BOUND}% of its core (${generatorBound.join(', ')}): these req/s are lower bounds`)
  return notes
}
