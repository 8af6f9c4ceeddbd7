import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import argon2 from 'argon2'
import { ConcurrencyLimit } from './concurrency-limit.js'

export interface PasswordHashingOptions {
  memoryCost: number
  timeCost: number
  /** argon2 runs at once (verifications and hashes together); default: the cores Node may use. */
  concurrency?: number
  /** Callers that may wait for a slot beyond those; default: twice the concurrency. */
  queue?: number
}

/** Weight of the newest verification in the moving average of their durations. */
const SMOOTHING = 0.2

/**
 * argon2id for low-entropy or long-lived secrets (passwords, client secrets). Deliberately
 * slow: never call it on a hot path; callers cache a successful verification by digest.
 *
 * argon2 is the one thing an unauthenticated caller can make Tessera spend real CPU on, so it
 * runs in at most `concurrency` slots (the cores) with a bounded queue; beyond that, 503
 * TESSERA_BUSY with Retry-After. Each run holds its slot, so a flood slows nothing but argon2.
 *
 * A verification against no hash at all (unknown user or client, password-less account, public
 * client) runs no argon2: it holds a slot for as long as a real verification takes — the moving
 * average of recent ones, measured once at start before there are any — so its timing, queueing
 * and refusals are those of a wrong secret for an existing account, and random names cost the
 * attacker time but Tessera no CPU. The average is only as representative as the stored hashes:
 * after ARGON2_* change, hashes made with the old parameters verify at the old cost, so a
 * successful verification re-hashes the secret with the current ones (`upgrade`) and the costs
 * converge.
 */
export class PasswordHasher {
  readonly #options: PasswordHashingOptions
  /** The argon2 slots; tests hold them to saturate the limit. */
  readonly slots: ConcurrencyLimit
  /** Milliseconds a real verification takes, as a moving average; undefined until measured. */
  #averageMs: number | undefined
  #calibration: Promise<number> | undefined

  constructor (options: PasswordHashingOptions) {
    this.#options = options
    const concurrency = options.concurrency ?? availableParallelism()
    // A queue of 16 per core: a burst of legitimate first verifications (a fleet of clients
    // starting at once) waits a few seconds instead of being refused; a flood beyond it is refused.
    this.slots = new ConcurrencyLimit({ capacity: concurrency, queue: options.queue ?? concurrency * 16 })
  }

  async hash (secret: string): Promise<string> {
    return await this.slots.run(async () => await this.#hashNow(secret))
  }

  async verify (hash: string | null | undefined, secret: string): Promise<boolean> {
    if (hash == null || hash === '') {
      await this.#equalise()
      return false
    }
    return await this.slots.run(async () => {
      const started = performance.now()
      let matches: boolean
      try {
        matches = await argon2.verify(hash, secret)
      } catch {
        // Not an argon2 hash Tessera made: no time worth learning from.
        return false
      }
      this.#observe(performance.now() - started)
      return matches
    })
  }

  /** Whether `hash` was made with other parameters than the configured ones (or another argon2 variant). */
  needsRehash (hash: string): boolean {
    return !hash.startsWith('$argon2id$') ||
      argon2.needsRehash(hash, { memoryCost: this.#options.memoryCost, timeCost: this.#options.timeCost, parallelism: 1 })
  }

  /** After `secret` verified against `hash`: its hash with the current parameters when `hash` has others, else null. */
  async upgrade (hash: string, secret: string): Promise<string | null> {
    return this.needsRehash(hash) ? await this.hash(secret) : null
  }

  /** The time a verification takes, measured once with a throw-away hash when none has run yet. */
  async calibrate (): Promise<number> {
    if (this.#averageMs !== undefined) return this.#averageMs
    this.#calibration ??= this.slots.run(async () => {
      const dummy = await this.#hashNow('tessera-calibration-secret')
      const started = performance.now()
      await argon2.verify(dummy, 'tessera-calibration-attempt')
      this.#averageMs ??= performance.now() - started
      return this.#averageMs
    }).catch((error: unknown) => {
      // Busy, most likely: the next caller measures again.
      this.#calibration = undefined
      throw error
    })
    return await this.#calibration
  }

  /** The moving average of verification times, in milliseconds (undefined before any). */
  get averageVerificationMs (): number | undefined {
    return this.#averageMs
  }

  async #equalise (): Promise<void> {
    const ms = this.#averageMs ?? await this.calibrate()
    await this.slots.run(async () => { await sleep(ms) })
  }

  #observe (ms: number): void {
    this.#averageMs = this.#averageMs === undefined ? ms : this.#averageMs + SMOOTHING * (ms - this.#averageMs)
  }

  async #hashNow (secret: string): Promise<string> {
    return await argon2.hash(secret, { type: argon2.argon2id, memoryCost: this.#options.memoryCost, timeCost: this.#options.timeCost, parallelism: 1 })
  }
}
