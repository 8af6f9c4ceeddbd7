import net from 'node:net'

/**
 * - `up`: bytes flow both ways.
 * - `down`: the database is gone — every open connection is destroyed, new ones are reset at once.
 * - `blackhole`: a partition — sockets stay open (and new ones are accepted) but nothing gets
 *   through; what is sent meanwhile is held back and delivered when the proxy is restored, as TCP
 *   would retransmit it once the network heals. A connection its client gives up on is closed on
 *   both sides.
 */
export type ProxyMode = 'up' | 'down' | 'blackhole'

export interface TcpProxy {
  readonly host: string
  readonly port: number
  readonly mode: ProxyMode
  /** Connections currently open through the proxy (accepted, not yet closed). */
  readonly connections: number
  /** The local ports of the proxy's connections to the target: PostgreSQL's `client_port` of each. */
  readonly upstreamPorts: number[]
  /** `url` with its host and port replaced by the proxy's. */
  url: (url: string) => string
  down: () => void
  blackhole: () => void
  /** Back to `up`: held-back bytes are delivered, connections accepted meanwhile reach the database. */
  restore: () => void
  close: () => Promise<void>
}

interface Pair {
  client: net.Socket
  upstream: net.Socket | null
  toUpstream: Buffer[]
  toClient: Buffer[]
}

/** A TCP proxy on 127.0.0.1 (a free port) to `target`, whose connectivity the test controls. */
export async function startProxy (target: { host: string, port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'up'
  const pairs = new Set<Pair>()

  function drop (pair: Pair): void {
    pairs.delete(pair)
    pair.client.destroy()
    pair.upstream?.destroy()
  }

  function flush (pair: Pair): void {
    if (pair.upstream !== null) for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk)
    for (const chunk of pair.toClient.splice(0)) pair.client.write(chunk)
  }

  function connectUpstream (pair: Pair): void {
    const upstream = net.connect({ host: target.host, port: target.port })
    pair.upstream = upstream
    upstream.setNoDelay(true)
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'up') pair.client.write(chunk)
      else pair.toClient.push(chunk)
    })
    upstream.on('error', () => {})
    upstream.on('close', () => { drop(pair) })
    flush(pair)
  }

  const server = net.createServer((client) => {
    client.on('error', () => {})
    if (mode === 'down') {
      client.resetAndDestroy()
      return
    }
    client.setNoDelay(true)
    const pair: Pair = { client, upstream: null, toUpstream: [], toClient: [] }
    pairs.add(pair)
    client.on('data', (chunk: Buffer) => {
      if (mode === 'up' && pair.upstream !== null) pair.upstream.write(chunk)
      else pair.toUpstream.push(chunk)
    })
    client.on('close', () => { drop(pair) })
    // In a blackhole the database never hears of the connection until the network heals.
    if (mode === 'up') connectUpstream(pair)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const address = server.address() as net.AddressInfo

  return {
    host: '127.0.0.1',
    port: address.port,
    get mode () { return mode },
    get connections () { return pairs.size },
    get upstreamPorts () {
      return [...pairs].flatMap((pair) => pair.upstream?.localPort === undefined ? [] : [pair.upstream.localPort])
    },
    url (url: string): string {
      const parsed = new URL(url)
      parsed.hostname = '127.0.0.1'
      parsed.port = String(address.port)
      return parsed.toString()
    },
    down () {
      mode = 'down'
      for (const pair of [...pairs]) drop(pair)
    },
    blackhole () {
      mode = 'blackhole'
    },
    restore () {
      mode = 'up'
      for (const pair of [...pairs]) {
        if (pair.upstream === null) connectUpstream(pair)
        else flush(pair)
      }
    },
    async close () {
      mode = 'down'
      for (const pair of [...pairs]) drop(pair)
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
