import { DEFAULT_PAGE_SIZE } from '../../schemas/listing.js'

/**
 * Keyset pagination over time-sortable ids (UUIDv7), with the semantics of the
 * Mastodon-family APIs (GoToSocial, Mastodon):
 * - `max_id`: only items older than it (id < max_id) — "next page" going back in time;
 * - `since_id`: only items newer than it (id > since_id), the newest `limit` of them;
 * - `min_id`: only items newer than it, the `limit` immediately after it — "previous page".
 * Results are always newest first.
 */
export interface KeysetQuery {
  max_id?: string
  since_id?: string
  min_id?: string
  limit?: number
}

export interface KeysetPlan {
  /** Conditions on the id to add to the query's where clause. */
  id: { $lt?: string, $gt?: string }
  /** The order the query must use; `min_id` reads upwards from the boundary. */
  order: 'asc' | 'desc'
  limit: number
}

export function planKeyset (query: KeysetQuery): KeysetPlan {
  const id: KeysetPlan['id'] = {}
  if (query.max_id !== undefined) id.$lt = query.max_id
  // min_id wins over since_id when both are given: both bound from below, min_id also orders.
  const lower = query.min_id ?? query.since_id
  if (lower !== undefined) id.$gt = lower
  return { id, order: query.min_id !== undefined ? 'asc' : 'desc', limit: query.limit ?? DEFAULT_PAGE_SIZE }
}

/** Puts a page read in `plan.order` into newest-first order. */
export function newestFirst<T> (rows: T[], plan: KeysetPlan): T[] {
  return plan.order === 'asc' ? rows.reverse() : rows
}

/** The query parameters of the neighbouring pages, or null for an empty page (no Link header). */
export function keysetLinks<T extends { id: string }> (page: T[], limit: number): { next: Record<string, string>, prev: Record<string, string> } | null {
  if (page.length === 0) return null
  const newest = page[0] as T
  const oldest = page[page.length - 1] as T
  return {
    next: { max_id: oldest.id, limit: String(limit) },
    prev: { min_id: newest.id, limit: String(limit) }
  }
}

/** Forgejo-compatible page/limit pagination: the Link relations for a page. */
export function pageLinks (page: number, limit: number, total: number): Record<string, Record<string, string>> {
  const last = Math.max(1, Math.ceil(total / limit))
  const links: Record<string, Record<string, string>> = {
    first: { page: '1', limit: String(limit) },
    last: { page: String(last), limit: String(limit) }
  }
  if (page < last) links.next = { page: String(page + 1), limit: String(limit) }
  if (page > 1) links.prev = { page: String(Math.min(page - 1, last)), limit: String(limit) }
  return links
}
