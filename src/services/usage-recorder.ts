import type { EntityManager } from '@mikro-orm/core'

interface Usage {
  at: Date
  ip: string | null
}

export interface UsageRecorderOptions {
  /** Seconds between flushes: the precision of `last_used`. */
  intervalSeconds: number
  /** Most distinct tokens buffered between flushes; beyond it, a token not yet noted is noted at its next use after a flush. */
  maxPending?: number
  onError?: (error: unknown) => void
}

const BATCH = 500

/**
 * `last_used_at` / `last_used_ip` without a database write per request: validations are noted
 * in memory (the latest per token) and written in batches once per interval, so the value is
 * accurate to about one interval and each token costs at most one write per interval.
 * Flushed on close. Where the caller cannot know the holder's address (introspection by a
 * resource server), only the time is noted and the previous address is kept.
 */
export class UsageRecorder {
  #pending = new Map<string, Usage>()
  readonly #em: EntityManager
  readonly #maxPending: number
  readonly #onError: (error: unknown) => void
  readonly #timer: NodeJS.Timeout | undefined
  #flushing: Promise<number> | undefined
  /** Total rows written (for tests and metrics). */
  written = 0

  constructor (em: EntityManager, options: UsageRecorderOptions) {
    this.#em = em
    this.#maxPending = options.maxPending ?? 100000
    this.#onError = options.onError ?? (() => {})
    if (options.intervalSeconds > 0) {
      this.#timer = setInterval(() => { this.flush().catch(this.#onError) }, options.intervalSeconds * 1000)
      this.#timer.unref()
    }
  }

  get pending (): number {
    return this.#pending.size
  }

  /** Notes that a token was used now. Cheap: one Map write. */
  record (tokenId: string, ip: string | null, at = new Date()): void {
    const previous = this.#pending.get(tokenId)
    if (previous === undefined && this.#pending.size >= this.#maxPending) return
    this.#pending.set(tokenId, { at, ip: ip ?? previous?.ip ?? null })
  }

  /** Writes everything noted so far; concurrent calls share one flush. Returns rows written. */
  async flush (): Promise<number> {
    if (this.#flushing !== undefined) return await this.#flushing
    this.#flushing = this.#flush().finally(() => { this.#flushing = undefined })
    return await this.#flushing
  }

  async #flush (): Promise<number> {
    if (this.#pending.size === 0) return 0
    const batch = this.#pending
    this.#pending = new Map()
    const entries = [...batch]
    let written = 0
    try {
      for (let i = 0; i < entries.length; i += BATCH) {
        const slice = entries.slice(i, i + BATCH)
        const values = slice.map(() => '(?::uuid, ?::timestamptz, ?::varchar)').join(', ')
        const params = slice.flatMap(([id, usage]) => [id, usage.at.toISOString(), usage.ip])
        const result = await this.#em.getConnection().execute<{ affectedRows: number }>(
          `update access_tokens as t
              set last_used_at = v.at, last_used_ip = coalesce(v.ip, t.last_used_ip)
             from (values ${values}) as v(id, at, ip)
            where t.id = v.id and (t.last_used_at is null or t.last_used_at < v.at)`,
          params,
          'run'
        )
        written += result.affectedRows
      }
    } catch (error) {
      // Keep what could not be written for the next attempt (newer notes win).
      for (const [id, usage] of batch) if (!this.#pending.has(id)) this.#pending.set(id, usage)
      throw error
    }
    this.written += written
    return written
  }

  /** Stops the timer and writes what is left (graceful shutdown). */
  async close (): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    await this.flush()
  }
}
