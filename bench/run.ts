/**
 * `npm run bench [-- --smoke] [--runs N] [--duration S] [--warmup S] [--connections N] [--tokens N] [--json PATH] [--only a,b]`
 *
 * Measures Tessera's hot path side by side with a bare Fastify server with its logger off (the
 * floor), a minimal implementation of the necessary work, and node-oidc-provider (the peer), one
 * fresh server process per scenario, on loopback; every scenario once per run, runs interleaved,
 * ratios as medians over the runs. Servers run
 * on core 0 and the load generator on core 1 when `taskset` exists. The database is a fresh one
 * on DATABASE_URL's server when it is set, else a fresh embedded DATA_DIR. See docs/performance.md.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { compileBenchServer, ensureTesseraBuild } from './build.js'
import { embeddedDatabase, postgresDatabase, type BenchDatabase } from './database.js'
import type { LoadResult, LoadSpec } from './load.js'
import { freePort, HAS_TASKSET, killAll, pinned, readMemory, startChild, waitUntilReady } from './processes.js'
import { figuresOf, ratios, renderReport, summarize, type Ratio, type ScenarioOutcome } from './report.js'
import { OIDC_PEER_CLIENT_ID, OIDC_PEER_CLIENT_SECRET, SCENARIOS, type RunContext, type Scenario } from './scenarios.js'
import { provision, REPO, TESSERA_SERVER, tesseraEnv } from './tessera.js'
import { assertTokenFormat, BENCH_HMAC_KEY, benchToken } from './tokens.js'

const USAGE = `Usage: npm run bench -- [options]
  --smoke             a quick check that everything runs: 1 run, 1 s warm-up, 2 s per scenario, 1000 tokens
  --runs N            interleaved runs of every scenario; ratios are their medians (default 3)
  --duration S        measured seconds per scenario (default 10)
  --warmup S          warm-up seconds per scenario (default 3)
  --connections N     concurrent connections of the load generator (default 50)
  --tokens N          tokens seeded in the database (default 100000)
  --json PATH         where to write the raw results (default bench/results/latest.json)
  --only a,b          run only these scenarios (ratios needing the others show n/a)
Database: a fresh database on DATABASE_URL's PostgreSQL server when set, else embedded (PGlite).`

const SERVER_CORE = 0
const LOAD_CORE = 1
/** Tessera's CACHE_MAX_ENTRIES default (schemas/env.ts). */
const DEFAULT_CACHE_ENTRIES = 100_000
/** The machine's load before the bench adds its own (other work skews the figures). */
const startedLoad = loadavg()
const LEGEND = [
  'Floors (bare-*) run bare Fastify with its logger off; bare-post-logger is the same with the logger at warn, for comparison only. minimal-* do the necessary work of a cached request and nothing else.',
  'req/s and the ratios: medians over the interleaved runs (min–max and each run beside them).',
  'Tessera ran with LOG_LEVEL=info (its default; the hot routes log at warn), NODE_ENV=production. req/s: mean over the measured seconds. p50/p99: over every measured answer.',
  'RSS/peak: VmRSS/VmHWM of the server right after the load; idle: VmRSS once it was ready.',
  'CPU% srv/gen: share of one core used by the server / the load generator while measured.',
  'req/s/core: req/s divided by the server CPU share (steadier on a busy machine; PASS/MISS is on req/s).'
].join('\n')
/** Set by Ctrl-C or SIGTERM: the run stops and cleans up. */
let interrupted = false

interface Settings {
  smoke: boolean
  runs: number
  durationSeconds: number
  warmupSeconds: number
  connections: number
  tokens: number
  jsonPath: string
  only: string[] | null
}

function positiveInteger (value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback
  const number = Number(value)
  if (!Number.isInteger(number) || number < 1) throw new Error(`--${flag} must be a positive whole number`)
  return number
}

function readSettings (): Settings {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      runs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      tokens: { type: 'string' },
      json: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  const smoke = values.smoke
  const only = values.only === undefined ? null : values.only.split(',').map((name) => name.trim()).filter(Boolean)
  const unknown = only?.filter((name) => !SCENARIOS.some((scenario) => scenario.name === name)) ?? []
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((scenario) => scenario.name).join(', ')}`)
  return {
    smoke,
    runs: positiveInteger(values.runs, smoke ? 1 : 3, 'runs'),
    durationSeconds: positiveInteger(values.duration, smoke ? 2 : 10, 'duration'),
    warmupSeconds: values.warmup === '0' ? 0 : positiveInteger(values.warmup, smoke ? 1 : 3, 'warmup'),
    connections: positiveInteger(values.connections, 50, 'connections'),
    tokens: positiveInteger(values.tokens, smoke ? 1000 : 100_000, 'tokens'),
    jsonPath: resolve(values.json ?? join(REPO, 'bench', 'results', 'latest.json')),
    only
  }
}

function say (line: string): void {
  process.stdout.write(line + '\n')
}

function gitDescription (): { commit: string | null, dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    return { commit, dirty: status.trim() !== '' }
  } catch {
    return { commit: null, dirty: null }
  }
}

interface ServerPlan {
  args: string[]
  env: Record<string, string>
  readyPath: string
}

/** The compiled reference and peer servers (bench/build.ts). */
interface BenchServers {
  reference: string
  minimal: string
  oidcPeer: string
}

function serverPlan (scenario: Scenario, port: number, database: BenchDatabase, context: RunContext, servers: BenchServers): ServerPlan {
  const common = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', PORT: String(port) }
  switch (scenario.server) {
    case 'reference':
      return { args: [servers.reference], env: { ...common, TOKEN_HMAC_KEY: BENCH_HMAC_KEY }, readyPath: '/info' }
    case 'reference-logger':
      return { args: [servers.reference], env: { ...common, TOKEN_HMAC_KEY: BENCH_HMAC_KEY, BENCH_LOGGER: 'warn' }, readyPath: '/info' }
    case 'minimal':
      return { args: [servers.minimal], env: { ...common, BENCH_BASIC: context.basicAuthorization, BENCH_TOKEN: benchToken(0) }, readyPath: '/healthz' }
    case 'reference-pg':
      return { args: [servers.reference], env: { ...common, TOKEN_HMAC_KEY: BENCH_HMAC_KEY, ...database.referenceEnv }, readyPath: '/info' }
    case 'oidc':
      return { args: [servers.oidcPeer], env: { ...common, BENCH_PEER_CLIENT_ID: OIDC_PEER_CLIENT_ID, BENCH_PEER_CLIENT_SECRET: OIDC_PEER_CLIENT_SECRET }, readyPath: '/.well-known/openid-configuration' }
    case 'tessera':
      return { args: [TESSERA_SERVER], env: tesseraEnv(database.env, { PORT: String(port), ...scenario.tesseraEnv?.(context) }) as Record<string, string>, readyPath: '/readyz' }
  }
}

/** The environment worth recording: no PATH/HOME. */
function recordedEnv (env: Record<string, string>): Record<string, string> {
  const { PATH: _path, HOME: _home, ...rest } = env
  return rest
}

async function runScenario (scenario: Scenario, run: number, settings: Settings, database: BenchDatabase, context: RunContext, servers: BenchServers, workDir: string): Promise<ScenarioOutcome> {
  const started = Date.now()
  const port = await freePort()
  const plan = serverPlan(scenario, port, database, context, servers)
  const [command, args] = pinned(SERVER_CORE, plan.args)
  const outcome: ScenarioOutcome = {
    name: scenario.name,
    run,
    description: scenario.description,
    ok: false,
    server: { command: [command, ...args], env: recordedEnv(plan.env) },
    idleMemory: null,
    memory: null,
    seconds: 0
  }
  const server = startChild(command, args, { env: plan.env, cwd: workDir })
  try {
    const origin = `http://127.0.0.1:${port}`
    await waitUntilReady(server, origin + plan.readyPath)
    outcome.idleMemory = readMemory(server.pid)
    const loadPlan = await scenario.load(context, origin)
    const spec: LoadSpec = {
      origin,
      ...loadPlan,
      connections: settings.connections,
      warmupSeconds: settings.warmupSeconds,
      durationSeconds: settings.durationSeconds,
      serverPid: server.pid
    }
    const specPath = join(workDir, `${scenario.name}-${run}.spec.json`)
    const resultPath = join(workDir, `${scenario.name}-${run}.result.json`)
    await writeFile(specPath, JSON.stringify(spec))
    const [loadCommand, loadArgs] = pinned(LOAD_CORE, ['--import', 'tsx', join(REPO, 'bench', 'load.ts'), specPath, resultPath])
    const load = startChild(loadCommand, loadArgs, { env: { ...process.env, NODE_ENV: 'production' }, cwd: REPO })
    const limitMs = spec.amount !== undefined ? 900_000 : (settings.warmupSeconds + settings.durationSeconds + 120) * 1000
    const timer = setTimeout(() => { load.stop(1000).catch(() => {}) }, limitMs)
    const code = await load.exited
    clearTimeout(timer)
    // Right after the load, before anything else happens to the server.
    outcome.memory = server.hasExited() ? null : readMemory(server.pid)
    let result: LoadResult | undefined
    try {
      result = JSON.parse(await readFile(resultPath, 'utf8')) as LoadResult
    } catch {
      throw new Error(`the load generator exited with ${String(code)} without a result:\n${load.output()}`)
    }
    outcome.load = result
    if (server.hasExited()) {
      const exit = await server.exited
      const why = exit === 0 ? ': a graceful shutdown, so something outside the bench sent it SIGTERM or SIGINT' : ''
      throw new Error(`the server exited during the load (${String(exit)})${why}\n${server.output()}`)
    }
    if (scenario.settleSeconds !== undefined) {
      await sleep(scenario.settleSeconds * 1000)
      outcome.settledMemory = readMemory(server.pid)
    }
    if (!result.ok) throw new Error(result.error ?? `the load generator failed (${String(code)})`)
    const needed = scenario.minDistinctTokens?.(context) ?? 0
    if ((result.distinctTokens ?? 0) < needed) throw new Error(`only ${result.distinctTokens ?? 0} distinct tokens were sent, fewer than the ${needed} the scenario needs`)
    outcome.ok = true
  } catch (error) {
    outcome.error = (error as Error).message
    const log = server.output().trim()
    if (log !== '' && !outcome.error.includes(log)) outcome.error += `\nserver output:\n${log}`
  } finally {
    await server.stop()
    outcome.seconds = (Date.now() - started) / 1000
  }
  return outcome
}

function describe (outcome: ScenarioOutcome): string {
  const figures = figuresOf(outcome)
  // The first line only here; the whole story is in the summary at the end and in the JSON.
  if (figures === null) return `FAILED: ${(outcome.error ?? 'unknown error').split('\n')[0] ?? ''}`
  const settled = outcome.settledMemory != null ? `, ${outcome.settledMemory.rssMb.toFixed(1)} MB after a pause` : ''
  return `${figures.reqPerSec.toFixed(0)} req/s, p50 ${figures.p50.toFixed(2)} ms, p99 ${figures.p99.toFixed(2)} ms, RSS ${figures.rssMb.toFixed(1)} MB${settled} (${outcome.seconds.toFixed(0)} s)`
}

async function main (): Promise<number> {
  const settings = readSettings()
  const startedAt = new Date()
  assertTokenFormat()
  ensureTesseraBuild(say)
  const servers: BenchServers = { reference: compileBenchServer('reference'), minimal: compileBenchServer('minimal'), oidcPeer: compileBenchServer('oidc-peer') }

  const workDir = await mkdtemp(join(tmpdir(), 'tessera-bench-'))
  const serverUrl = process.env.DATABASE_URL ?? ''
  const database = serverUrl !== '' ? postgresDatabase(serverUrl) : embeddedDatabase(workDir)
  let cleaning: Promise<void> | undefined
  const cleanup = async (): Promise<void> => {
    cleaning ??= (async () => {
      killAll()
      try {
        await database.drop()
      } catch (error) {
        process.stderr.write(`bench: could not drop the bench database: ${(error as Error).message}\n`)
      }
      rmSync(workDir, { recursive: true, force: true })
    })()
    await cleaning
  }
  // Ctrl-C (the children get it too) or a kill: leave nothing behind. Handlers stay installed so
  // that a second signal (npm and tsx relay the first) cannot cut the cleanup short.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return
      interrupted = true
      process.stderr.write(`\nbench: ${signal}, cleaning up\n`)
      cleanup().finally(() => process.exit(130))
    })
  }
  process.once('exit', () => {
    killAll()
    rmSync(workDir, { recursive: true, force: true })
  })

  try {
    await database.create()
    say(`Tessera bench: ${settings.smoke ? 'smoke run, ' : ''}${settings.runs} interleaved run(s), ${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per scenario, ${settings.tokens} tokens`)
    say(`database: ${database.description}`)
    say(`cpu: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}; node ${process.version}; ${HAS_TASKSET ? `servers on core ${SERVER_CORE}, load generator on core ${LOAD_CORE} (taskset)` : 'no taskset: processes are not pinned'}; load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}`)

    const env = tesseraEnv(database.env)
    const setupStarted = Date.now()
    const credentials = await provision(env, workDir)
    const seedStarted = Date.now()
    const tty = process.stdout.isTTY
    await database.seed(settings.tokens, (done) => {
      if (tty) process.stdout.write(`\rseeding tokens: ${done}/${settings.tokens}`)
    })
    if (tty) process.stdout.write('\n')
    const seedSeconds = (Date.now() - seedStarted) / 1000
    say(`setup: migrations, applications and user with the CLI in ${((seedStarted - setupStarted) / 1000).toFixed(1)} s; ${settings.tokens} tokens seeded in ${seedSeconds.toFixed(1)} s`)

    const cacheEntries = Math.min(DEFAULT_CACHE_ENTRIES, settings.tokens)
    const context: RunContext = {
      tokens: settings.tokens,
      basicAuthorization: `Basic ${Buffer.from(`${credentials.clientId}:${credentials.clientSecret}`).toString('base64')}`,
      cacheEntries,
      // A fifth more than fit, when there are that many tokens: the cache fills and then evicts.
      cacheFullRequests: Math.min(settings.tokens, Math.ceil(cacheEntries * 1.2))
    }

    const selected = SCENARIOS.filter((scenario) => settings.only === null || settings.only.includes(scenario.name))
    const outcomes: ScenarioOutcome[] = []
    const perRun: Ratio[][] = []
    // Interleaved: every scenario once, then again, so that a slow minute of a shared machine
    // lands on one sample of several scenarios rather than on every sample of one. Each run
    // starts one scenario further on: no scenario is always the first after the seeding.
    for (let run = 1; run <= settings.runs; run++) {
      const shift = (run - 1) % selected.length
      const order = [...selected.slice(shift), ...selected.slice(0, shift)]
      for (const [position, scenario] of order.entries()) {
        if (interrupted) break
        process.stdout.write(`[run ${run}/${settings.runs}, ${position + 1}/${order.length}] ${scenario.name} … `)
        const outcome = await runScenario(scenario, run, settings, database, context, servers, workDir)
        outcomes.push(outcome)
        say(describe(outcome))
      }
      perRun.push(ratios((name) => figuresOf(outcomes.find((outcome) => outcome.name === name && outcome.run === run))))
    }

    const checks = summarize(perRun)
    const finishedAt = new Date()
    say('')
    say(renderReport(outcomes, checks))
    say(LEGEND)

    const failed = outcomes.filter((outcome) => !outcome.ok)
    const report = {
      startedAt,
      finishedAt,
      seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      machine: {
        cpuModel: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        node: process.version,
        os: `${type()} ${release()}`,
        totalMemoryMb: Math.round(totalmem() / 1024 / 1024),
        taskset: HAS_TASKSET,
        serverCore: HAS_TASKSET ? SERVER_CORE : null,
        loadGeneratorCore: HAS_TASKSET ? LOAD_CORE : null,
        loadAverageAtStart: startedLoad,
        loadAverageAtEnd: loadavg()
      },
      settings: {
        smoke: settings.smoke,
        runs: settings.runs,
        connections: settings.connections,
        warmupSeconds: settings.warmupSeconds,
        durationSeconds: settings.durationSeconds,
        tokens: settings.tokens,
        cacheEntries: context.cacheEntries,
        cacheFullRequests: context.cacheFullRequests,
        database: { kind: database.kind, description: database.description, poolMax: database.poolMax },
        seedSeconds,
        tessera: recordedEnv(tesseraEnv({}) as Record<string, string>),
        git: gitDescription()
      },
      ratios: checks,
      scenarios: outcomes
    }
    mkdirSync(dirname(settings.jsonPath), { recursive: true })
    writeFileSync(settings.jsonPath, JSON.stringify(report, null, 2) + '\n')
    say(`raw results: ${settings.jsonPath}`)
    say(`total ${report.seconds.toFixed(0)} s`)
    if (failed.length > 0) {
      process.stderr.write(`\nbench: ${failed.length} scenario(s) failed:\n`)
      for (const outcome of failed) process.stderr.write(`- ${outcome.name}: ${(outcome.error ?? 'unknown error').slice(0, 3000)}\n`)
      return 1
    }
    return 0
  } finally {
    await cleanup()
  }
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  if (interrupted) return
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
