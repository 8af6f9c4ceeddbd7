/**
 * The real parts of the cluster test: a PostgreSQL database of its own on the machine's server,
 * a redis-server of its own (so that it can be stopped), three Tessera processes (the built
 * server, as deployed), each reaching PostgreSQL through a TCP proxy the test controls, and nginx
 * as the load balancer and `auth_request` gateway, configured from deploy/nginx.conf.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort, startChild, waitUntilReady, type Child } from '../bench/processes.js'
import { REPO, TESSERA_SERVER } from '../bench/tessera.js'
import { findProgram, prepareNginx } from '../test/nginx.js'
import { startProxy, type TcpProxy } from '../test/proxy.js'

/** A fresh database on the PostgreSQL server of `serverUrl` (…/postgres or …/test), dropped by `drop`. */
export async function createDatabase (serverUrl: string): Promise<{ url: string, drop: () => Promise<void> }> {
  const name = `tessera_cluster_${Date.now()}_${process.pid}`
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  await admin(`create database ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: async () => { await admin(`drop database if exists ${name} with (force)`) } }
}

/** A redis-server on a free loopback port that keeps nothing on disk; `stop` and `start` again on the same port. */
export class RedisServer {
  #child: Child | null = null
  private constructor (readonly port: number, readonly directory: string) {}

  static async start (): Promise<RedisServer> {
    const redis = new RedisServer(await freePort(), await mkdtemp(join(tmpdir(), 'tessera-cluster-redis-')))
    await redis.start()
    return redis
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    const child = startChild(findProgram('redis-server'), ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.directory], { env: { PATH: process.env.PATH ?? '' }, cwd: this.directory })
    this.#child = child
    const deadline = Date.now() + 10_000
    while (!child.output().includes('Ready to accept connections')) {
      if (child.hasExited() || Date.now() > deadline) throw new Error(`redis-server did not start:\n${child.output()}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** Stopped as a crash would stop it: SIGKILL, no goodbye to the clients. */
  async stop (): Promise<void> {
    const child = this.#child
    this.#child = null
    if (child === null || child.hasExited()) return
    process.kill(child.pid, 'SIGKILL')
    await child.exited
  }

  async close (): Promise<void> {
    await this.stop()
    await rm(this.directory, { recursive: true, force: true })
  }
}

export interface ReplicaOptions {
  name: string
  port: number
  /** The replica's own way to the database, which the test can cut. */
  proxy: TcpProxy
  databaseUrl: string
  env: Record<string, string>
  cwd: string
}

/** One Tessera process: the built server, started and restarted on the same port. */
export class Replica {
  #child: Child | null = null
  constructor (readonly options: ReplicaOptions) {}

  get name (): string { return this.options.name }
  get origin (): string { return `http://127.0.0.1:${this.options.port}` }
  get proxy (): TcpProxy { return this.options.proxy }
  get child (): Child {
    if (this.#child === null) throw new Error(`${this.name} is not running`)
    return this.#child
  }

  async start (): Promise<void> {
    const { port, proxy, databaseUrl, env, cwd } = this.options
    this.#child = startChild(process.execPath, [TESSERA_SERVER], {
      env: { ...env, PORT: String(port), DATABASE_URL: proxy.url(databaseUrl) },
      cwd
    })
    await waitUntilReady(this.#child, `${this.origin}/readyz`)
  }

  /** SIGTERM, as an orchestrator sends it; resolves with the exit code and how long it took. */
  async terminate (): Promise<{ code: number | string, ms: number }> {
    const child = this.child
    const started = performance.now()
    process.kill(child.pid, 'SIGTERM')
    const code = await child.exited
    return { code, ms: performance.now() - started }
  }

  async stop (): Promise<void> {
    await this.#child?.stop(5000)
    this.#child = null
  }
}

/** Replaces `from` by `to` in `text`, insisting it occurs exactly once (the deployed file must not drift unnoticed). */
function replaceOnce (text: string, from: string, to: string): string {
  const parts = text.split(from)
  if (parts.length !== 2) throw new Error(`expected "${from}" once in deploy/nginx.conf, found it ${parts.length - 1} times`)
  return parts.join(to)
}

/**
 * nginx running deploy/nginx.conf, with what only Docker has replaced: the replicas' addresses
 * (three `server` lines instead of one name Docker's DNS resolves), the ports, and the example
 * application behind the gateway.
 */
export class Nginx {
  private constructor (readonly balancerPort: number, readonly gatewayPort: number, readonly prefix: string, readonly child: Child) {}

  get balancer (): string { return `http://127.0.0.1:${this.balancerPort}` }
  get gateway (): string { return `http://127.0.0.1:${this.gatewayPort}` }

  static async start (replicas: Replica[], applicationPort: number): Promise<Nginx> {
    const [balancerPort, gatewayPort] = [await freePort(), await freePort()]
    let site = await readFile(join(REPO, 'deploy', 'nginx.conf'), 'utf8')
    site = replaceOnce(site, 'resolver 127.0.0.11 valid=5s ipv6=off;', '')
    const server = /^ {4}server tessera:3000 resolve(.*);$/m.exec(site)
    if (server === null) throw new Error('deploy/nginx.conf has no "server tessera:3000 resolve …;" line')
    site = replaceOnce(site, server[0], replicas.map((replica) => `    server 127.0.0.1:${replica.options.port}${server[1]};`).join('\n'))
    site = replaceOnce(site, 'listen 8080;', `listen 127.0.0.1:${balancerPort};`)
    site = replaceOnce(site, 'listen 8081;', `listen 127.0.0.1:${gatewayPort};`)
    site = replaceOnce(site, 'proxy_pass http://app:5678;', `proxy_pass http://127.0.0.1:${applicationPort};`)
    const { prefix, binary, args } = await prepareNginx(site, 1024)
    const child = startChild(binary, args, { env: { PATH: process.env.PATH ?? '' }, cwd: prefix })
    const nginx = new Nginx(balancerPort, gatewayPort, prefix, child)
    await waitUntilReady(child, `${nginx.balancer}/livez`)
    return nginx
  }

  /** What nginx wrote to its error log (upstream failures it retried elsewhere show here). */
  async errorLog (): Promise<string> {
    return await readFile(join(this.prefix, 'error.log'), 'utf8').catch(() => '')
  }

  async close (): Promise<void> {
    if (!this.child.hasExited()) process.kill(this.child.pid, 'SIGQUIT')
    await Promise.race([this.child.exited, new Promise((resolve) => setTimeout(resolve, 5000))])
    await this.child.stop(1000)
    await rm(this.prefix, { recursive: true, force: true })
  }
}

/** A proxy per replica to the database server of `databaseUrl`. */
export async function proxyFor (databaseUrl: string): Promise<TcpProxy> {
  const url = new URL(databaseUrl)
  return await startProxy({ host: url.hostname, port: Number(url.port === '' ? 5432 : url.port) })
}

/** The application behind the gateway: answers 200 with the identity nginx passed on. */
export async function startApplication (): Promise<{ port: number, close: () => Promise<void> }> {
  const { createServer } = await import('node:http')
  const server = createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      response.setHeader('content-type', 'application/json')
      response.end(JSON.stringify({ user: request.headers['x-auth-request-user'] ?? null }))
    })
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    port,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
