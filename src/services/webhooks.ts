import { createHmac, randomBytes } from 'node:crypto'
import type { EntityManager } from '@mikro-orm/core'
import { Repeating } from './repeating.js'
import type { Sealer } from './sealing.js'

/** A new endpoint's signing secret, in the Standard Webhooks form: `whsec_` and 24 random bytes, base64. */
export function newWebhookSecret (): string {
  return `whsec_${randomBytes(24).toString('base64')}`
}

/**
 * The Standard Webhooks signature of one message: `v1,` and the base64 HMAC-SHA256, keyed by the
 * secret's bytes, of `<id>.<timestamp>.<body>`.
 */
export function webhookSignature (secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`
}

export interface WebhookDispatcherOptions {
  fork: () => EntityManager
  sealer: Sealer
  /** How long one attempt may take before it counts as failed (ms). */
  timeoutMs: number
  /** The delay before the first retry; each next one is four times longer, at most an hour, ±20 % (ms). */
  retryBaseMs: number
  /** How long after the event deliveries are retried before they are marked failed (ms). */
  retryPeriodMs: number
  /** How often the outbox is polled (ms). */
  intervalMs?: number
  /** Days an event and its deliveries are kept once nothing is pending for it (0: forever). */
  retentionDays?: number
  log: { warn: (object: Record<string, unknown>, message: string) => void }
}

interface Claimed {
  id: string
  attempts: number
  endpoint_id: string
  url: string
  secret: string
  event_id: string
  type: string
  data: Record<string, unknown>
  event_created_at: Date
}

/** Most deliveries one replica takes per poll. */
const BATCH = 20
const MAX_DELAY_MS = 3_600_000
/** How often the retention sweep runs, at most. */
const SWEEP_INTERVAL_MS = 3_600_000
const USER_AGENT = 'Tessera-Webhooks'

/**
 * Delivers the outbox: every poll, this replica (1) fans new events out into one delivery per
 * endpoint that wants them and (2) takes the deliveries that are due — both with `FOR UPDATE SKIP
 * LOCKED`, so replicas that come and go never take the same one — and sends them. A delivery
 * taken is leased (its next attempt moved past the timeout) before it is sent, so one whose
 * replica dies mid-way is sent again by another: at least once. Retries back off exponentially
 * with jitter until WEBHOOK_RETRY_PERIOD after the event, then the delivery is marked failed.
 */
export class WebhookDispatcher {
  readonly #options: WebhookDispatcherOptions
  readonly #timer: Repeating
  #sweptAt = 0

  constructor (options: WebhookDispatcherOptions) {
    this.#options = options
    this.#timer = new Repeating(async () => { await this.poll() }, options.intervalMs ?? 1000)
  }

  start (): void {
    this.#timer.start()
  }

  async stop (): Promise<void> {
    await this.#timer.stop()
  }

  /** One poll: fan out, then send what is due. Never throws (the next poll tries again). */
  async poll (): Promise<{ fannedOut: number, sent: number }> {
    try {
      const fannedOut = await this.#fanOut()
      const sent = await this.#deliverDue()
      if (Date.now() - this.#sweptAt > SWEEP_INTERVAL_MS) await this.sweep()
      return { fannedOut, sent }
    } catch (error) {
      this.#options.log.warn({ err: error }, 'webhook delivery: the poll failed; retrying at the next one')
      return { fannedOut: 0, sent: 0 }
    }
  }

  /** Deletes the events older than the retention with nothing pending (their deliveries go with them); how many. */
  async sweep (): Promise<number> {
    this.#sweptAt = Date.now()
    const days = this.#options.retentionDays ?? 0
    if (days === 0) return 0
    const deleted = await this.#execute<{ id: string }>(`
      delete from events v where v.created_at < now() - make_interval(days => ?) and v.dispatched_at is not null
        and not exists (select 1 from webhook_deliveries d where d.event_id = v.id and d.status = 'pending')
      returning v.id`, [days])
    return deleted.length
  }

  async #execute<T> (sql: string, params: unknown[]): Promise<T[]> {
    return await this.#options.fork().getConnection().execute(sql, params, 'all') as T[]
  }

  /** Creates the deliveries of undispatched events (to the endpoints registered before each); how many events were dispatched. */
  async #fanOut (): Promise<number> {
    const rows = await this.#execute<{ id: string }>(`
      with batch as (
        select id, type, created_at from events where dispatched_at is null order by id limit 100 for update skip locked
      ), created as (
        insert into webhook_deliveries (id, created_at, endpoint_id, event_id, status, attempts, next_attempt_at)
        select gen_random_uuid(), now(), e.id, b.id, 'pending', 0, now()
        from batch b join webhook_endpoints e on e.enabled and e.created_at <= b.created_at
          and (cardinality(e.events) = 0 or b.type = any(e.events))
      )
      update events set dispatched_at = now() where id in (select id from batch) returning id`, [])
    return rows.length
  }

  async #deliverDue (): Promise<number> {
    const leaseSeconds = Math.ceil(this.#options.timeoutMs / 1000) + 5
    const claimed = await this.#execute<Claimed>(`
      with due as (
        select d.id from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id
        where d.status = 'pending' and d.next_attempt_at <= now() and e.enabled
        order by d.next_attempt_at limit ${BATCH} for update of d skip locked
      ), leased as (
        update webhook_deliveries d set attempts = d.attempts + 1, last_attempt_at = now(),
          next_attempt_at = now() + make_interval(secs => ?)
        where d.id in (select id from due)
        returning d.id, d.attempts, d.endpoint_id, d.event_id
      )
      select l.id, l.attempts, e.id as endpoint_id, e.url, e.secret, v.id as event_id, v.type, v.data, v.created_at as event_created_at
      from leased l join webhook_endpoints e on e.id = l.endpoint_id join events v on v.id = l.event_id`, [leaseSeconds])
    await Promise.all(claimed.map(async (delivery) => { await this.#send(delivery) }))
    return claimed.length
  }

  async #send (delivery: Claimed): Promise<void> {
    const body = JSON.stringify({ type: delivery.type, timestamp: new Date(delivery.event_created_at).toISOString(), data: delivery.data })
    const timestamp = Math.floor(Date.now() / 1000)
    let status: number | null = null
    let error: string | null = null
    try {
      const secret = this.#options.sealer.unseal(delivery.endpoint_id, delivery.secret)
      const response = await fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          'webhook-id': delivery.event_id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': webhookSignature(secret, delivery.event_id, timestamp, body)
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#options.timeoutMs)
      })
      status = response.status
      await response.body?.cancel()
      if (status < 200 || status >= 300) error = `HTTP ${status}`
    } catch (failure) {
      const cause = (failure as Error & { cause?: Error }).cause
      error = (failure as Error).name === 'TimeoutError' ? `no answer within ${this.#options.timeoutMs} ms` : (cause?.message ?? (failure as Error).message)
    }
    await this.#record(delivery, status, error)
  }

  async #record (delivery: Claimed, status: number | null, error: string | null): Promise<void> {
    if (error === null) {
      await this.#execute('update webhook_deliveries set status = \'succeeded\', last_status = ?, last_error = null where id = ?', [status, delivery.id])
      return
    }
    const age = Date.now() - new Date(delivery.event_created_at).getTime()
    const delay = Math.min(this.#options.retryBaseMs * 4 ** (delivery.attempts - 1), MAX_DELAY_MS) * (0.8 + Math.random() * 0.4)
    const failed = age + delay > this.#options.retryPeriodMs
    await this.#execute(
      'update webhook_deliveries set status = ?, last_status = ?, last_error = ?, next_attempt_at = now() + make_interval(secs => ?) where id = ?',
      [failed ? 'failed' : 'pending', status, error.slice(0, 500), delay / 1000, delivery.id])
  }
}
