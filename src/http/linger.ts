import type { Socket } from 'node:net'

/** nginx's lingering_timeout and lingering_time: how long an unread body is waited for and read. */
const IDLE_MS = 5_000
const TOTAL_MS = 30_000

const lingering = new WeakSet<Socket>()

/**
 * After an answer sent before the request body was read to its end (a 413 while the client is
 * still sending), Node closes the connection as soon as the answer is written; the client's
 * next write then meets a reset, and many clients report that reset instead of the answer.
 * nginx's lingering close, here: when Node would close the socket, it only ends our side, reads
 * and discards what the client still sends, and closes once the client has finished — or after
 * 5 s without data, or 30 s in all.
 */
export function lingerBeforeClosing (socket: Socket | null | undefined): void {
  if (socket == null || socket.destroyed || lingering.has(socket)) return
  lingering.add(socket)
  socket.destroySoon = function lingeringClose (this: Socket): void {
    if (this.writable) this.end()
    const total = setTimeout(() => this.destroy(), TOTAL_MS)
    total.unref()
    this.setTimeout(IDLE_MS, () => this.destroy())
    this.once('end', () => this.destroy())
    this.once('close', () => { clearTimeout(total) })
    this.resume()
  }
}
