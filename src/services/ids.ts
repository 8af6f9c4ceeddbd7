import { v7 } from 'uuid'

/** Time-ordered ids: monotonic within this process, so a bigger id is always a newer row. */
export function uuidv7 (): string {
  return v7()
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid (value: string): boolean {
  return UUID_PATTERN.test(value)
}
