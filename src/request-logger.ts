import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

/**
 * A request's logger that becomes a pino child only when something is logged. pino serialises
 * and redacts a child's bindings when it is created, about 3% of the introspection hot path —
 * spent on every request although the hot routes log nothing when all goes well (their level
 * is `warn`). Levels are checked here first, so a silenced call costs a comparison.
 */
class RequestLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions
  #child: FastifyBaseLogger | undefined
  readonly #threshold: number
  level: string

  constructor (parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
    this.level = options.level ?? parent.level
    this.#threshold = thresholdOf(parent, this.level)
  }

  #logger (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  #log (level: Level, args: unknown[]): void {
    if (levelValue(this.#parent, level) < this.#threshold) return
    const logger = this.#logger() as unknown as Record<Level, (...a: unknown[]) => void>
    logger[level](...args)
  }

  isLevelEnabled (level: string): boolean {
    return levelValue(this.#parent, level) >= this.#threshold
  }

  trace (...args: unknown[]): void { this.#log('trace', args) }
  debug (...args: unknown[]): void { this.#log('debug', args) }
  info (...args: unknown[]): void { this.#log('info', args) }
  warn (...args: unknown[]): void { this.#log('warn', args) }
  error (...args: unknown[]): void { this.#log('error', args) }
  fatal (...args: unknown[]): void { this.#log('fatal', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options)
  }
}

function levelValue (logger: FastifyBaseLogger, level: string): number {
  const values = (logger as unknown as { levels?: { values: Record<string, number> } }).levels?.values
  return values?.[level] ?? (level === 'silent' ? Infinity : 0)
}

function thresholdOf (logger: FastifyBaseLogger, level: string): number {
  return level === 'silent' ? Infinity : levelValue(logger, level)
}

/** Fastify's `childLoggerFactory`: a lazy RequestLogger per request. */
export const lazyChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (logger, bindings, options) {
  return new RequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger
}
