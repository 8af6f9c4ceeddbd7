import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'

export class DataDirInUseError extends Error {}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The embedded database is a single-process store: a second process opening the same
 * directory would corrupt it. A pid file guards the directory; a stale one is taken over.
 */
export async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true })
  const path = join(dataDir, 'tessera.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(String(process.pid))
      await handle.close()
      return async () => { await rm(path, { force: true }) }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
        throw new DataDirInUseError(`the embedded database in ${dataDir} is in use by process ${pid}; stop it first, or set DATABASE_URL`)
      }
      await rm(path, { force: true })
    }
  }
  throw new DataDirInUseError(`could not lock the embedded database in ${dataDir}`)
}
