import { Repeating } from './repeating.js'
import type { SharedCounters } from './shared-counters.js'

/** The Redis set of replicas that reached the database lately (scored by Redis's clock). */
const KEY = 'fleet:database-reached'

export interface FleetViewOptions {
  counters: SharedCounters
  /** This replica's name in the set (CacheInvalidation's instance id). */
  instanceId: string
  /** One round trip to the database; rejects when it is unreachable. */
  ping: () => Promise<void>
  /** How often this replica checks the database and says so (ms). */
  intervalMs?: number
  /** How recent another replica's word must be to count (ms). */
  freshMs?: number
}

/**
 * What the other replicas see of the database, for readiness (READINESS_MODE=fleet). Every
 * replica checks the database every second and, when it answered, marks itself in a Redis set.
 * A replica that cannot reach the database asks whether another one reached it *since this one
 * lost it* (and within the last three seconds): yes — it is cut off alone and should leave the
 * load balancer; no — the outage is everyone's, and every replica staying in it (serving cached
 * answers, 503 fast on misses) beats a Service with no endpoints at all. Marks made before the
 * loss say nothing about it: counting them would send the whole fleet out of the balancer for
 * the first seconds of an outage everyone sees.
 */
export class FleetView {
  readonly #counters: SharedCounters
  readonly #instanceId: string
  readonly #ping: () => Promise<void>
  readonly #freshMs: number
  readonly #timer: Repeating
  /** When this replica's check first failed, on Redis's clock; null while it reaches the database. */
  #lostAt: number | null = null

  constructor (options: FleetViewOptions) {
    this.#counters = options.counters
    this.#instanceId = options.instanceId
    this.#ping = options.ping
    const intervalMs = options.intervalMs ?? 1000
    this.#freshMs = options.freshMs ?? 3 * intervalMs
    this.#timer = new Repeating(async () => { await this.beat() }, intervalMs)
  }

  start (): void {
    this.#timer.start()
  }

  async stop (): Promise<void> {
    await this.#timer.stop()
  }

  /** One check of the database, said to the fleet when it answered (the timer runs it; tests call it). */
  async beat (): Promise<void> {
    try {
      await this.#ping()
    } catch {
      this.#lostAt ??= await this.#counters.now()
      return
    }
    this.reached()
    await this.#counters.mark(KEY, this.#instanceId)
  }

  /** This replica reached the database (its check, or /readyz): a later loss is a new one. */
  reached (): void {
    this.#lostAt = null
  }

  /**
   * Whether another replica reached the database since this one lost it (within the last few
   * seconds); null when Redis cannot tell. Asked before this replica's own check noticed the
   * loss, "since" is now: the others' next checks, within a second, tell.
   */
  async othersReachDatabase (): Promise<boolean | null> {
    const since = this.#lostAt ?? await this.#counters.now()
    if (since === null) return null
    const others = await this.#counters.countOthers(KEY, this.#instanceId, this.#freshMs, since)
    return others === null ? null : others > 0
  }
}
