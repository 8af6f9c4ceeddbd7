/**
 * Shares equal strings and lists among the token records the cache holds. Every row read from
 * the database brings its own copies of its owner's id and name, its application's id and
 * client_id and its scopes: a full cache of one user's or one application's tokens would hold
 * as many copies of each as it holds tokens. Interned, they are held once.
 *
 * Bounded: past `max` distinct values it starts afresh. Records keep what they hold; only new
 * records stop sharing with older ones. The values are never mutated by their readers
 * (records are read-only once built), which is what makes sharing them safe.
 */
export class Interner {
  readonly #strings = new Map<string, string>()
  readonly #lists = new Map<string, string[]>()
  readonly #max: number

  constructor (max = 10_000) {
    this.#max = max
  }

  string<T extends string | null> (value: T): T {
    if (value === null) return value
    const known = this.#strings.get(value)
    if (known !== undefined) return known as T
    if (this.#strings.size >= this.#max) this.#strings.clear()
    this.#strings.set(value, value)
    return value
  }

  list<T extends string[] | null> (values: T): T {
    if (values === null) return values
    // A separator no scope, audience or id contains (they are printable and space-free).
    const key = values.join('\n')
    const known = this.#lists.get(key)
    if (known !== undefined) return known as T
    if (this.#lists.size >= this.#max) this.#lists.clear()
    this.#lists.set(key, values)
    return values
  }
}
