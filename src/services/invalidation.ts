import { randomUUID } from 'node:crypto'
import { Histogram } from 'prom-client'
import type { CacheFreshness } from './cache-freshness.js'
import type { ClientAuthenticator } from './client-auth.js'
import type { TokenCache } from './token-cache.js'

/** The PostgreSQL channel every replica listens on. */
export const INVALIDATION_CHANNEL = 'tessera_invalidation'

/** What changed: tokens by id, all tokens of a user, everything of an application, or a client's verified secret. */
export type Change =
  | { kind: 'tokens', ids: string[] }
  | { kind: 'user', id: string }
  | { kind: 'application', id: string }
  | { kind: 'client', id: string }

const KIND_CODES = { tokens: 't', user: 'u', application: 'a', client: 'c' } as const
const CODE_KINDS = { t: 'tokens', u: 'user', a: 'application', c: 'client' } as const

/** NOTIFY payloads must stay under 8000 bytes; 150 ids of 36 characters stay far below. */
const IDS_PER_MESSAGE = 150

/** Sends one payload to every listener (`select pg_notify(channel, payload)`). */
export type Notify = (payload: string) => Promise<void>

export interface InvalidationStats {
  /** Changes this instance announced to the others. */
  published: number
  /** Changes received from other instances. */
  received: number
  /** Messages that could not be announced (the others catch up within CACHE_TTL). */
  publishFailures: number
}

/** Publish → applied lag buckets (seconds): well under a second is the promise; the tail shows trouble. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * Keeps every replica's caches coherent. A change is applied to this instance's caches at once
 * (before the request that made it is answered), then announced on INVALIDATION_CHANNEL; every
 * other replica's listener applies it on arrival. Messages carry the sender's id so a replica
 * ignores its own. With the embedded database there are no other replicas (the data directory is
 * locked to one process) and `notify` is absent.
 */
export class CacheInvalidation {
  readonly instanceId = randomUUID()
  readonly stats: InvalidationStats = { published: 0, received: 0, publishFailures: 0 }
  /**
   * How long changes announced by other replicas took to be applied here: from the sender's clock
   * at publishing to this one's at applying (so clock skew between hosts adds to it). Exported
   * by GET /metrics as tessera_cache_invalidation_lag_seconds.
   */
  readonly lag = new Histogram({
    name: 'tessera_cache_invalidation_lag_seconds',
    help: 'Time from a change being announced by another replica to its being applied to this cache (sender clock to receiver clock)',
    buckets: LAG_BUCKETS,
    registers: []
  })

  readonly #cache: TokenCache
  readonly #clients: ClientAuthenticator
  readonly #notify: Notify | undefined
  readonly #onPublishError: (error: unknown) => void

  constructor (options: { cache: TokenCache, clients: ClientAuthenticator, notify?: Notify, onPublishError?: (error: unknown) => void }) {
    this.#cache = options.cache
    this.#clients = options.clients
    this.#notify = options.notify
    this.#onPublishError = options.onPublishError ?? (() => {})
  }

  /** Tokens revoked or rotated away. */
  async tokens (ids: string[]): Promise<void> {
    if (ids.length === 0) return
    await this.publish({ kind: 'tokens', ids })
  }

  /** A user suspended, deleted, or changed in a way that affects their tokens. */
  async user (id: string): Promise<void> {
    await this.publish({ kind: 'user', id })
  }

  /** An application deleted, or what it grants changed: its tokens and its verified credentials. */
  async application (id: string): Promise<void> {
    await this.publish({ kind: 'application', id })
  }

  /** A client's secret rotated, or what its credentials grant changed. */
  async client (id: string): Promise<void> {
    await this.publish({ kind: 'client', id })
  }

  /**
   * Applies a change here, then announces it. Announcing never fails the caller: the change is
   * committed and already effective on this instance; a replica that misses the message drops
   * the entry when its lifetime (CACHE_TTL) ends.
   */
  async publish (change: Change): Promise<void> {
    this.apply(change)
    if (this.#notify === undefined) return
    for (const payload of encode(this.instanceId, change, Date.now())) {
      try {
        await this.#notify(payload)
        this.stats.published++
      } catch (error) {
        this.stats.publishFailures++
        this.#onPublishError(error)
      }
    }
  }

  /** A message from the channel; our own and malformed ones are ignored. */
  receive (payload: string): void {
    const decoded = decode(payload)
    if (decoded === null || decoded.origin === this.instanceId) return
    this.stats.received++
    this.apply(decoded.change)
    // A sender from before the publish time was carried has none.
    if (decoded.publishedAt !== null) this.lag.observe(Math.max(0, Date.now() - decoded.publishedAt) / 1000)
  }

  apply (change: Change): void {
    switch (change.kind) {
      case 'tokens':
        for (const id of change.ids) this.#cache.invalidateToken(id)
        break
      case 'user':
        this.#cache.invalidateUser(change.id)
        break
      case 'application':
        this.#cache.invalidateApplication(change.id)
        this.#clients.invalidateApplication(change.id)
        break
      case 'client':
        this.#clients.invalidateApplication(change.id)
        break
    }
  }

  /** Drops everything cached (the listener reconnected: messages may have been missed). */
  clearAll (): void {
    this.#cache.clear()
    this.#clients.clear()
  }
}

/**
 * `<origin> <published at, ms> <kind code>:<id>,<id>…`, split so no payload carries more than
 * IDS_PER_MESSAGE ids. The time lets every receiver measure the lag.
 */
export function encode (origin: string, change: Change, publishedAt = Date.now()): string[] {
  const ids = change.kind === 'tokens' ? change.ids : [change.id]
  const messages: string[] = []
  for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) {
    messages.push(`${origin} ${Math.floor(publishedAt)} ${KIND_CODES[change.kind]}:${ids.slice(i, i + IDS_PER_MESSAGE).join(',')}`)
  }
  return messages
}

/** A payload's parts; `publishedAt` is null in a message from a replica that predates it (a rolling upgrade). */
export function decode (payload: string): { origin: string, publishedAt: number | null, change: Change } | null {
  const match = /^(\S+) (?:(\d{1,15}) )?([tuac]):([0-9a-f-]{1,36}(?:,[0-9a-f-]{1,36})*)$/.exec(payload)
  if (match === null) return null
  const [, origin = '', time, code = '', list = ''] = match
  const publishedAt = time === undefined ? null : Number(time)
  const kind = CODE_KINDS[code as keyof typeof CODE_KINDS]
  const ids = list.split(',')
  if (kind === 'tokens') return { origin, publishedAt, change: { kind, ids } }
  if (ids.length !== 1) return null
  return { origin, publishedAt, change: { kind, id: ids[0] ?? '' } }
}

export type ListenerState = 'connecting' | 'listening' | 'reconnecting' | 'stopped'

/** The parts of a `pg` Client the listener uses (a fresh one per connection attempt). */
export interface ListenerClient {
  connect: () => Promise<unknown>
  query: (config: { text: string, query_timeout?: number }) => Promise<unknown>
  end: () => Promise<void>
  on: ((event: 'notification', listener: (message: { channel: string, payload?: string }) => void) => unknown) &
  ((event: 'error', listener: (error: Error) => void) => unknown) &
  ((event: 'end', listener: () => void) => unknown)
}

export interface ListenerOptions {
  /** A new, unconnected client each call. */
  createClient: () => ListenerClient
  invalidation: CacheInvalidation
  freshness: CacheFreshness
  /** Milliseconds between liveness probes on the listening connection. */
  pingInterval: number
  /** Milliseconds a probe (or the connection) may take before the connection is deemed dead. */
  timeout: number
  /** Reconnect delays: doubles from `min` to `max` milliseconds. */
  backoff: { min: number, max: number }
  onStateChange?: (state: ListenerState, error?: unknown) => void
}

/**
 * The LISTEN side of the invalidation channel: one dedicated connection (outside the pool),
 * probed every `pingInterval` so a silently dead connection is noticed, and replaced with
 * exponential backoff when it fails. While it is down the caches run degraded (short lifetimes);
 * when it is back they are cleared, since messages sent meanwhile were lost.
 */
export class InvalidationListener {
  readonly #options: ListenerOptions
  #state: ListenerState = 'connecting'
  #client: ListenerClient | null = null
  #timer: NodeJS.Timeout | null = null
  #delay: number
  /** Connections established so far (the first one included). */
  connections = 0

  constructor (options: ListenerOptions) {
    this.#options = options
    this.#delay = options.backoff.min
    // Until the first LISTEN succeeds, changes from other replicas could be missed.
    options.freshness.degrade()
  }

  get state (): ListenerState {
    return this.#state
  }

  /** Connects (resolving once listening, or once the first attempt failed: it retries on its own). */
  async start (): Promise<void> {
    await this.#connect()
  }

  async stop (): Promise<void> {
    this.#setState('stopped')
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    const client = this.#client
    this.#client = null
    await client?.end().catch(() => {})
  }

  #stopped (): boolean {
    return this.#state === 'stopped'
  }

  async #connect (): Promise<void> {
    if (this.#stopped()) return
    const client = this.#options.createClient()
    this.#client = client
    client.on('notification', (message) => {
      if (message.channel === INVALIDATION_CHANNEL && message.payload !== undefined) this.#options.invalidation.receive(message.payload)
    })
    client.on('error', (error) => { this.#lost(client, error) })
    client.on('end', () => { this.#lost(client, new Error('the listening connection ended')) })
    try {
      await client.connect()
      await client.query({ text: `listen ${INVALIDATION_CHANNEL}`, query_timeout: this.#options.timeout })
    } catch (error) {
      this.#lost(client, error)
      return
    }
    if (this.#client !== client || this.#stopped()) return
    this.connections++
    this.#delay = this.#options.backoff.min
    // Whatever was announced while no connection listened is lost: start from an empty cache.
    if (this.connections > 1) this.#options.invalidation.clearAll()
    this.#options.freshness.restore()
    this.#setState('listening')
    this.#schedulePing(client)
  }

  #schedulePing (client: ListenerClient): void {
    this.#timer = setTimeout(() => {
      this.#timer = null
      client.query({ text: 'select 1', query_timeout: this.#options.timeout }).then(
        () => { if (this.#client === client && this.#state === 'listening') this.#schedulePing(client) },
        (error: unknown) => { this.#lost(client, error) }
      )
    }, this.#options.pingInterval)
    this.#timer.unref()
  }

  /** The connection failed (whichever way): degrade the caches and try again after a delay. */
  #lost (client: ListenerClient, error: unknown): void {
    if (this.#client !== client || this.#stopped()) return
    this.#client = null
    client.end().catch(() => {})
    this.#options.freshness.degrade()
    this.#setState('reconnecting', error)
    if (this.#timer !== null) clearTimeout(this.#timer)
    const delay = this.#delay
    this.#delay = Math.min(this.#delay * 2, this.#options.backoff.max)
    this.#timer = setTimeout(() => {
      this.#timer = null
      // #connect handles its own failures (by scheduling the next attempt).
      this.#connect().catch(() => {})
    }, delay)
    this.#timer.unref()
  }

  #setState (state: ListenerState, error?: unknown): void {
    if (this.#state === state) return
    this.#state = state
    this.#options.onStateChange?.(state, error)
  }
}
