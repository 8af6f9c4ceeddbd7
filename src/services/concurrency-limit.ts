import { Errors } from '../errors.js'

/**
 * At most `capacity` jobs at once, and at most `queue` callers waiting for a slot; a caller
 * beyond those is refused at once (503 TESSERA_BUSY, Retry-After: 1). A long queue only turns
 * a flood into seconds of latency for everyone, the legitimate callers included: a short one
 * absorbs a burst, and a refusal tells the client to come back.
 */
export class ConcurrencyLimit {
  readonly capacity: number
  readonly queue: number
  #active = 0
  readonly #waiting: Array<() => void> = []

  constructor (options: { capacity: number, queue: number }) {
    this.capacity = Math.max(1, Math.floor(options.capacity))
    this.queue = Math.max(0, Math.floor(options.queue))
  }

  /** A slot (call the function it resolves to, once, to give it back); throws Busy when none is free and the queue is full. */
  async acquire (): Promise<() => void> {
    if (this.#active < this.capacity) {
      this.#active++
      return this.#releaser()
    }
    if (this.#waiting.length >= this.queue) throw new Errors.Busy()
    // The slot is handed over by whoever releases it: #active does not change on the way.
    await new Promise<void>((resolve) => { this.#waiting.push(resolve) })
    return this.#releaser()
  }

  async run<T> (work: () => Promise<T>): Promise<T> {
    const release = await this.acquire()
    try {
      return await work()
    } finally {
      release()
    }
  }

  get active (): number {
    return this.#active
  }

  get waiting (): number {
    return this.#waiting.length
  }

  #releaser (): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#waiting.shift()
      if (next !== undefined) next()
      else this.#active--
    }
  }
}
