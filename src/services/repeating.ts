/**
 * Runs `task` every `intervalMs` in the background: never two runs at once (a tick that finds
 * the last run still going skips), never keeping the process alive, and `stop()` waits for the
 * run in flight. For the periodic work of the fleet (budget sync, database reachability).
 */
export class Repeating {
  readonly #task: () => Promise<void>
  readonly #intervalMs: number
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor (task: () => Promise<void>, intervalMs: number) {
    this.#task = task
    this.#intervalMs = intervalMs
  }

  start (): void {
    this.#timer ??= setInterval(() => { this.#running ??= this.#task().finally(() => { this.#running = undefined }) }, this.#intervalMs).unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running
  }
}
