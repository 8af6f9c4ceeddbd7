import { Redis } from 'ioredis'

/** A fixed-window count as @fastify/rate-limit reads it: requests so far, milliseconds left. */
export interface WindowCount {
  current: number
  ttl: number
}

/** One budget window's uses to add to the cluster's count (see BudgetSync). */
export interface WindowDelta {
  key: string
  delta: number
  /** Milliseconds the count must live: to the end of its window, and a little more. */
  ttl: number
}

export interface SharedCountersOptions {
  url: string
  /** Prepended to every key (REDIS_KEY_PREFIX), so several deployments can share one Redis. */
  prefix: string
  /** How long a command may take (REDIS_TIMEOUT_MS) before the caller counts locally instead. */
  timeoutMs: number
  onStateChange?: (state: SharedCounterState, error?: Error) => void
  /** A command that failed or timed out while connected (the caller counted locally). */
  onCommandError?: (error: Error) => void
}

export type SharedCounterState = 'connecting' | 'up' | 'down'

/** INCR with a fixed window: the first count opens it; a count without expiry (never expected) gets one. */
const INCREMENT = `
local current = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then redis.call('PEXPIRE', KEYS[1], ttl) else ttl = left end
end
return {current, ttl}`

const READ = `
local current = redis.call('GET', KEYS[1])
if not current then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {tonumber(current), ttl}`

/** Marks ARGV[1] as having reached the database now (Redis's clock: every replica compares on one clock); forgets marks a minute old. */
const MARK = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - 60000)
redis.call('PEXPIRE', KEYS[1], 60000)
return 1`

/** How many members other than ARGV[1] were marked within the last ARGV[2] ms, and after ARGV[3] (ms on Redis's clock). */
const COUNT_OTHERS = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local from = math.max(ms - tonumber(ARGV[2]), tonumber(ARGV[3]) + 1)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf')
local others = 0
for _, member in ipairs(members) do
  if member ~= ARGV[1] then others = others + 1 end
end
return others`

/** The scripts above as ioredis commands (defineCommand); each answers a promise. */
interface CounterCommands {
  tesseraIncrement: (key: string, ttl: number) => Promise<[number, number]>
  tesseraRead: (key: string) => Promise<[number, number]>
  tesseraMark: (key: string, member: string) => Promise<number>
  tesseraCountOthers: (key: string, member: string, withinMs: number, afterMs: number) => Promise<number>
}

/**
 * The counters every replica shares, in Redis (REDIS_URL): the rate limits' fixed windows and the
 * hot routes' budgets. Nothing here ever waits for Redis to come back: while it is unreachable
 * (not connected, or a command past `timeoutMs`) every call answers null at once and the caller
 * counts in its own process; ioredis reconnects in the background and the counts are shared again
 * as soon as it is back. After a timeout, Redis is left alone for a second, so a Redis that stopped
 * answering without closing the connection costs one request `timeoutMs`, not every request.
 */
export class SharedCounters {
  readonly #redis: Redis & CounterCommands
  readonly #onStateChange: SharedCountersOptions['onStateChange']
  #state: SharedCounterState = 'connecting'
  readonly #connectTimeoutMs: number
  /** Until when (ms) calls skip Redis after a timeout. */
  #restingUntil = 0
  readonly #onCommandError: SharedCountersOptions['onCommandError']
  readonly stats = { localFallbacks: 0, commandFailures: 0 }

  constructor (options: SharedCountersOptions) {
    this.#onStateChange = options.onStateChange
    this.#onCommandError = options.onCommandError
    this.#connectTimeoutMs = Math.max(1000, options.timeoutMs)
    this.#redis = new Redis(options.url, {
      keyPrefix: options.prefix,
      lazyConnect: true,
      // A command while disconnected fails at once instead of queueing behind the reconnection.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: this.#connectTimeoutMs,
      // TCP keepalive: a peer gone without a word (a blackholed network) is noticed by the kernel too.
      keepAlive: 1000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
      connectionName: 'tessera-limits'
    }) as Redis & CounterCommands
    this.#redis.defineCommand('tesseraIncrement', { numberOfKeys: 1, lua: INCREMENT })
    this.#redis.defineCommand('tesseraRead', { numberOfKeys: 1, lua: READ })
    this.#redis.defineCommand('tesseraMark', { numberOfKeys: 1, lua: MARK })
    this.#redis.defineCommand('tesseraCountOthers', { numberOfKeys: 1, lua: COUNT_OTHERS })
    this.#redis.on('ready', () => { this.#setState('up') })
    this.#redis.on('error', (error: Error) => { if (this.#redis.status !== 'ready') this.#setState('down', error) })
    this.#redis.on('close', () => { if (this.#state === 'up') this.#setState('down') })
  }

  /**
   * Connects, waiting at most about a second: a Redis that is down or silent at start is retried
   * in the background, and the limits count in this process meanwhile.
   */
  async start (): Promise<void> {
    const connected = this.#redis.connect().catch((error: unknown) => { this.#setState('down', error instanceof Error ? error : new Error(String(error))) })
    let timer: NodeJS.Timeout | undefined
    const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#connectTimeoutMs) })
    await Promise.race([connected, waited])
    clearTimeout(timer)
    if (this.#state === 'connecting') this.#setState('down', new Error(`no answer from Redis within ${this.#connectTimeoutMs} ms`))
  }

  async stop (): Promise<void> {
    this.#redis.disconnect(false)
  }

  get state (): SharedCounterState {
    return this.#state
  }

  /** Whether a call would reach Redis now (no side effect: asking is not counting). */
  get available (): boolean {
    return this.#state === 'up' && this.#redis.status === 'ready' && Date.now() >= this.#restingUntil
  }

  /** A rate-limit count made in this process because Redis could not take it (the metric's source). */
  countedLocally (): void {
    this.stats.localFallbacks++
  }

  /** Counts one under `key` in a window of `windowMs`; null when Redis could not answer (count locally). */
  async increment (key: string, windowMs: number): Promise<WindowCount | null> {
    const reply = await this.#send(async () => await this.#redis.tesseraIncrement(key, windowMs))
    return reply === null ? null : { current: reply[0], ttl: reply[1] }
  }

  /** The count under `key` without counting; null when Redis could not answer. */
  async read (key: string): Promise<WindowCount | null> {
    const reply = await this.#send(async () => await this.#redis.tesseraRead(key))
    return reply === null ? null : { current: reply[0], ttl: reply[1] }
  }

  /** Marks `member` in the set `key` as seen now (Redis's clock); false when Redis could not answer. */
  async mark (key: string, member: string): Promise<boolean> {
    if (!this.available) return false
    return await this.#send(async () => await this.#redis.tesseraMark(key, member)) !== null
  }

  /** How many members of `key` other than `member` were marked within `withinMs` and after `afterMs` (Redis's clock); null when Redis could not answer. */
  async countOthers (key: string, member: string, withinMs: number, afterMs = 0): Promise<number | null> {
    if (!this.available) return null
    const others = await this.#send(async () => await this.#redis.tesseraCountOthers(key, member, withinMs, afterMs))
    return others === null ? null : Number(others)
  }

  /** Redis's clock in ms, the one marks are scored on; null when Redis could not answer. */
  async now (): Promise<number | null> {
    if (!this.available) return null
    const reply = await this.#send(async () => await this.#redis.time())
    return reply === null ? null : Number(reply[0]) * 1000 + Math.floor(Number(reply[1]) / 1000)
  }

  /** Adds each delta to its key's count (one round trip); the cluster totals, or null when Redis could not answer. */
  async addAll (deltas: WindowDelta[]): Promise<number[] | null> {
    const pipeline = this.#redis.pipeline()
    for (const { key, delta, ttl } of deltas) pipeline.incrby(key, delta).pexpire(key, ttl)
    return await this.#send(async () => {
      const results = await pipeline.exec()
      if (results === null) throw new Error('the pipeline was discarded')
      const totals: number[] = []
      for (let i = 0; i < results.length; i += 2) {
        const [error, total] = results[i] ?? [new Error('missing reply'), null]
        if (error !== null) throw error
        totals.push(Number(total))
      }
      return totals
    })
  }

  /** One command's reply, or null when it failed or timed out (see #failed). */
  async #send<T> (command: () => Promise<T>): Promise<T | null> {
    try {
      return await command()
    } catch (error) {
      this.#failed(error)
      return null
    }
  }

  /** A command failed or timed out: Redis is left alone for a second (callers fall back meanwhile). */
  #failed (error: unknown): void {
    this.stats.commandFailures++
    // The connection may look alive while Redis no longer answers: leave it alone for a second.
    this.#restingUntil = Date.now() + 1000
    this.#onCommandError?.(error instanceof Error ? error : new Error(String(error)))
  }

  #setState (state: SharedCounterState, error?: Error): void {
    if (state === this.#state) return
    this.#state = state
    this.#onStateChange?.(state, error)
  }
}
