import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { lockDataDir } from './lock.js'

export interface EmbeddedPostgres {
  /** A postgresql:// URL for the same driver that talks to a real server. */
  url: string
  close: () => Promise<void>
}

/**
 * Starts PGlite (PostgreSQL compiled to WebAssembly) and serves it on a loopback port, so
 * MikroORM's ordinary PostgreSQL driver and the same migrations run against it. PGlite is a
 * single-connection database: the pool must hold one connection (see DATABASE_POOL_MAX).
 * `dataDir` persists the data; `memory://` keeps it in memory (tests). `template`, a dump made
 * by `dumpEmptyCluster`, starts a new in-memory database from it instead of running initdb.
 */
export async function startEmbeddedPostgres (dataDir: string, options: { template?: Blob } = {}): Promise<EmbeddedPostgres> {
  const unlock = dataDir.startsWith('memory://') ? async () => {} : await lockDataDir(dataDir)
  const db = options.template === undefined ? await PGlite.create(dataDir) : await PGlite.create({ loadDataDir: options.template })
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 })
  await server.start()
  const url = `postgresql://postgres@${server.getServerConn()}/postgres`
  return {
    url,
    async close () {
      await server.stop()
      await db.close()
      await unlock()
    }
  }
}

/**
 * A freshly initialised, empty cluster as a tarball. Loading it is about five times faster than
 * initdb and instantiates one WebAssembly module where initdb needs three, which matters to a
 * test process that creates dozens of databases (see test/helper.ts).
 */
export async function dumpEmptyCluster (): Promise<Blob> {
  const db = await PGlite.create('memory://')
  try {
    return await db.dumpDataDir('none')
  } finally {
    await db.close()
  }
}
