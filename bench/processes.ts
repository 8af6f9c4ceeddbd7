import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** Whether `taskset` exists here: servers then run on core 0, the load generator on core 1. */
export const HAS_TASKSET = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0

/** The command line for `args` run by this Node.js, pinned to `core` when taskset exists. */
export function pinned (core: number, args: string[]): [string, string[]] {
  return HAS_TASKSET ? ['taskset', ['-c', String(core), process.execPath, ...args]] : [process.execPath, args]
}

/** Every child still running, so that a failure or Ctrl-C leaves none behind. */
const running = new Set<ChildProcess>()

/** Kills whatever is still running, synchronously (for process 'exit'). */
export function killAll (): void {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
}

/** Keeps the last `limit` characters a child wrote, to explain a failure. */
class Tail {
  #text = ''
  constructor (readonly limit = 8000) {}
  add (chunk: Buffer | string): void {
    this.#text = (this.#text + chunk.toString()).slice(-this.limit)
  }

  toString (): string {
    return this.#text
  }
}

export interface Child {
  pid: number
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  exited: Promise<number | string>
  hasExited: () => boolean
  output: () => string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop: (graceMs?: number) => Promise<void>
}

export function startChild (command: string, args: string[], options: { env: NodeJS.ProcessEnv, cwd: string, echo?: boolean }): Child {
  const child = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  running.add(child)
  const tail = new Tail()
  const onData = (chunk: Buffer): void => {
    tail.add(chunk)
    if (options.echo === true) process.stderr.write(chunk)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  let done = false
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true
      running.delete(child)
      resolve(code ?? signal ?? 'unknown')
    })
    child.once('error', (error) => {
      done = true
      running.delete(child)
      tail.add(`\n${error.message}\n`)
      resolve('error')
    })
  })
  return {
    pid: child.pid,
    exited,
    hasExited: () => done,
    output: () => tail.toString(),
    async stop (graceMs = 15_000) {
      if (done) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exited
      clearTimeout(timer)
    }
  }
}

/** A free loopback port (released at once; nothing else on this machine races for it in practice). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port'))
      })
    })
  })
}

/** Polls `url` until it answers `status`, the child exits, or `timeoutMs` passes. */
export async function waitUntilReady (child: Child, url: string, status = 200, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (child.hasExited()) throw new Error(`exited with ${String(await child.exited)} before it was ready:\n${child.output()}`)
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
      await response.arrayBuffer()
      if (response.status === status) return
      last = `HTTP ${response.status}`
    } catch (error) {
      last = (error as Error).message
    }
    await sleep(100)
  }
  throw new Error(`not ready after ${timeoutMs} ms (${url}: ${last}):\n${child.output()}`)
}

export interface Memory {
  /** Resident set now, MB. */
  rssMb: number
  /** Peak resident set so far (VmHWM), MB. */
  peakMb: number
}

/** VmRSS and VmHWM of a running process, from /proc (Linux); null elsewhere. */
export function readMemory (pid: number): Memory | null {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return match?.[1] === undefined ? Number.NaN : Number(match[1]) / 1024
  }
  return { rssMb: field('VmRSS'), peakMb: field('VmHWM') }
}
