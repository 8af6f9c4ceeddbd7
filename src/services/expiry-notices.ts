import type { EntityManager } from '@mikro-orm/core'
import { Repeating } from './repeating.js'

/** TOKEN_EXPIRY_NOTICE_DAYS (`30,7,1`) as distinct positive day counts, largest first. */
export function parseNoticeDays (value: string): number[] {
  const days = value.split(',').map((part) => part.trim()).filter((part) => part !== '').map(Number).filter((day) => day > 0)
  return [...new Set(days)].sort((a, b) => b - a)
}

/** One notice sent: the event written, and to whom. */
export interface ExpiryNotice {
  eventId: string
  type: 'token.expiring' | 'token.expired'
  tokenId: string
  tokenName: string
  owner: string
  email: string | null
  expiresAt: Date
  /** The threshold announced, in days; 0 for the expiry itself. */
  days: number
}

export interface ExpiryNoticesOptions {
  fork: () => EntityManager
  /** Thresholds in days (parseNoticeDays). */
  days: number[]
  /** Called after the notices are committed (mail); its failures are logged, not retried. */
  notify?: (notices: ExpiryNotice[]) => Promise<void>
  intervalMs?: number
  log: { warn: (object: Record<string, unknown>, message: string) => void }
}

/** Most tokens one run announces (the next run takes the rest). */
const BATCH = 500

/**
 * `token.expiring` once per threshold and `token.expired` once, for personal tokens (a
 * client_credentials token lives an hour and is asked for again: no notice). One statement per
 * run takes the tokens whose next notice is due (`FOR UPDATE SKIP LOCKED`: replicas share the
 * work), records the threshold on the token and writes the events, so a notice survives restarts
 * and is never sent twice. A threshold the token was already within when it was created is
 * skipped: a 5-day token does not hear it expires "within 30 days".
 */
export class ExpiryNotices {
  readonly #options: ExpiryNoticesOptions
  readonly #timer: Repeating

  constructor (options: ExpiryNoticesOptions) {
    this.#options = options
    this.#timer = new Repeating(async () => { await this.run() }, options.intervalMs ?? 60_000)
  }

  start (): void {
    this.#timer.start()
  }

  async stop (): Promise<void> {
    await this.#timer.stop()
  }

  /** One run; the notices sent. Never throws (the next run tries again). */
  async run (): Promise<ExpiryNotice[]> {
    let notices: ExpiryNotice[]
    try {
      notices = await this.#announce()
    } catch (error) {
      this.#options.log.warn({ err: error }, 'expiry notices: the run failed; retrying at the next one')
      return []
    }
    if (notices.length > 0 && this.#options.notify !== undefined) {
      await this.#options.notify(notices).catch((error: unknown) => { this.#options.log.warn({ err: error }, 'expiry notices: telling the owners failed') })
    }
    return notices
  }

  async #announce (): Promise<ExpiryNotice[]> {
    const thresholds = [...this.#options.days, 0]
    const rows = await this.#options.fork().getConnection().execute(`
      with due as (
        select t.id, th.threshold
        from access_tokens t
        join users u on u.id = t.user_id
        cross join lateral (
          select min(d) as threshold from unnest(array[?]::int[]) as d
          where t.expires_at <= now() + make_interval(days => d)
            and (d = 0 or t.expires_at - t.created_at > make_interval(days => d))
        ) th
        where t.revoked_at is null and t.expires_at is not null and u.suspended_at is null
          and t.expires_at <= now() + make_interval(days => ?)
          and th.threshold is not null
          and (t.expiry_notice_days is null or t.expiry_notice_days > th.threshold)
        order by t.expires_at
        limit ${BATCH}
        for update of t skip locked
      ), marked as (
        update access_tokens t set expiry_notice_days = due.threshold from due where t.id = due.id
        returning t.id, t.name, t.expires_at, t.user_id, due.threshold
      ), written as (
        insert into events (id, created_at, type, data, dispatched_at)
        select gen_random_uuid(), now(), case when m.threshold = 0 then 'token.expired' else 'token.expiring' end,
          jsonb_build_object('token', jsonb_build_object('id', m.id, 'name', m.name), 'owner', u.username,
            'expires_at', m.expires_at, 'days', m.threshold),
          null
        from marked m join users u on u.id = m.user_id
        returning id, type, data
      )
      select w.id as event_id, w.type, m.id as token_id, m.name, u.username, u.email, m.expires_at, m.threshold
      from written w join marked m on (w.data -> 'token' ->> 'id')::uuid = m.id join users u on u.id = m.user_id`,
    [thresholds, Math.max(...thresholds)], 'all') as Array<{ event_id: string, type: ExpiryNotice['type'], token_id: string, name: string, username: string, email: string | null, expires_at: Date | string, threshold: number }>
    return rows.map((row) => ({
      eventId: row.event_id,
      type: row.type,
      tokenId: row.token_id,
      tokenName: row.name,
      owner: row.username,
      email: row.email,
      expiresAt: new Date(row.expires_at),
      days: row.threshold
    }))
  }
}
