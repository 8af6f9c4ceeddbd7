import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx')
const STEP_TIMEOUT = 60_000

t.setTimeout(300_000)

/**
 * A fresh, empty data directory, removed at teardown. Not t.testdir(): its path is fixed per test
 * name, so two runs of this file in one checkout (several engineers, or CI jobs) would wipe each
 * other's embedded database mid-start.
 */
function freshDataDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-server-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface RunningServer {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves once stdout matches `pattern`; rejects if the process exits first or on timeout. */
  waitForOutput: (pattern: RegExp) => Promise<RegExpMatchArray>
  /** Resolves with the exit code; rejects on timeout. */
  exited: () => Promise<number | null>
}

/** Starts `tsx src/server.ts` on the embedded database in `dataDir`; always killed at teardown. */
function startServer (t: Test, dataDir: string, env: Record<string, string> = {}): RunningServer {
  const child = spawn(TSX, ['src/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      // tsx's shebang finds `node` on the PATH: make it the Node this test runs on.
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      NODE_ENV: 'production',
      DATABASE_URL: '',
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ARGON2_MEMORY_COST: '1024',
      ARGON2_TIME_COST: '1',
      BOOTSTRAP_ADMIN_USERNAME: 'admin',
      BOOTSTRAP_ADMIN_PASSWORD: '',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: tsx runs the server in a child process, and teardown must reach both.
    detached: true
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  })

  function withTimeout<T> (promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}\nstdout: ${stdout}\nstderr: ${stderr}`)), STEP_TIMEOUT)
    })
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
  }

  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForOutput: (pattern) => withTimeout(new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = (): void => {
        const match = stdout.match(pattern)
        if (match !== null) {
          child.stdout?.off('data', check)
          resolve(match)
        }
      }
      child.stdout?.on('data', check)
      exit.then((code) => reject(new Error(`the server exited (${code}) before printing ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`)), reject)
      check()
    }), String(pattern)),
    exited: () => withTimeout(exit, 'the server to exit')
  }
}

const LISTENING = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/

async function stop (server: RunningServer): Promise<number | null> {
  server.child.kill('SIGTERM')
  return await server.exited()
}

t.test('a bad variable makes the server exit with status 78, naming the variable on stderr', async (t) => {
  const port = startServer(t, freshDataDir(t), { PORT: 'abc' })
  const key = startServer(t, freshDataDir(t), { TOKEN_HMAC_KEY: 'too short' })
  t.strictSame(await Promise.all([port.exited(), key.exited()]), [78, 78])
  t.equal(port.stderr(), 'tessera: invalid configuration: PORT must be integer\n')
  t.equal(port.stdout(), '')
  t.equal(key.stderr(), 'tessera: invalid configuration: TOKEN_HMAC_KEY must be at least 32 characters (or unset)\n')
})

t.test('a first start prints the admin credentials once; a later start on the same data prints nothing', async (t) => {
  const dataDir = freshDataDir(t)

  // The curl lines use the public URL (PORT=0 binds a free port the banner cannot know in advance).
  const first = startServer(t, dataDir, { PUBLIC_URL: 'https://tessera.test' })
  const [, baseUrl] = await first.waitForOutput(LISTENING)
  const out = first.stdout()
  const password = out.match(/^ {2}password: {4}([0-9A-Za-z]{24})$/m)?.[1] ?? ''
  const token = out.match(/^ {2}admin token: (tsr_[0-9A-Za-z]{38})$/m)?.[1] ?? ''
  t.match(out, /\nTessera: first start — created the admin user "admin"\.\n/)
  t.not(password, '', 'prints a generated password')
  t.not(token, '', 'prints a first admin token')
  t.match(out, '  These are shown once. Store them now.\n')
  t.ok(out.includes(`    curl -s https://tessera.test/oauth/token/info -H "Authorization: Bearer ${token}"\n`), 'prints a curl line with the token')
  t.ok(out.includes(`    curl -s -u 'admin:${password}' -H 'content-type: application/json' \\\n      -d '{"name":"my-first-token","scopes":["read:tokens"]}' https://tessera.test/api/v1/users/admin/tokens\n`), 'prints a curl line with the password')
  const logLines = out.split('\n').filter((line) => line.startsWith('{'))
  t.ok(logLines.length > 0)
  t.equal(logLines.filter((line) => line.includes(token) || line.includes(password)).length, 0, 'the secrets never reach the log')

  // The printed credentials work against the running server.
  const info = await fetch(`${baseUrl}/oauth/token/info`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(info.status, 200)
  t.match(await info.json(), { scope: ['admin', 'introspect', 'write:tokens', 'read:tokens'], application: { uid: 'internal' } })
  const created = await fetch(`${baseUrl}/api/v1/users/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'my-first-token', scopes: ['read:tokens'] })
  })
  t.equal(created.status, 201)

  t.equal(await stop(first), 0, 'SIGTERM shuts down cleanly')
  t.equal(first.stderr(), '')

  const second = startServer(t, dataDir)
  const [, secondUrl] = await second.waitForOutput(LISTENING)
  t.notMatch(second.stdout(), /first start|password|admin token|tsr_/)
  const again = await fetch(`${secondUrl}/oauth/token/info`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(again.status, 200, 'the data persisted in DATA_DIR')
  t.equal(await stop(second), 0)
})

t.test('with BOOTSTRAP_ADMIN_PASSWORD set, the first start prints no password and no token', async (t) => {
  const server = startServer(t, freshDataDir(t), { BOOTSTRAP_ADMIN_USERNAME: 'root', BOOTSTRAP_ADMIN_PASSWORD: 'a configured password' })
  await server.waitForOutput(LISTENING)
  const out = server.stdout()
  t.match(out, '\nTessera: first start — created the admin user "root".\n  Its password is the one in BOOTSTRAP_ADMIN_PASSWORD;')
  t.notMatch(out, /password: |admin token|curl|tsr_/)
  t.notOk(out.includes('a configured password'))
  t.equal(await stop(server), 0)
})
