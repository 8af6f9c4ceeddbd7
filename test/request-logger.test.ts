import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { lazyChildLogger } from '../src/request-logger.js'

/** A Fastify instance logging JSON lines into an array, with the lazy request logger. */
async function server (level: string): Promise<{ app: ReturnType<typeof Fastify>, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ logger: { level, stream, redact: ['secret'] }, childLoggerFactory: lazyChildLogger, disableRequestLogging: true })
  app.get('/quiet', { logLevel: 'warn' }, async (request) => {
    request.log.info('not written: below the route level')
    request.log.warn({ secret: 'hunter2' }, 'written with the request id')
    const log = request.log as typeof request.log & { isLevelEnabled: (level: string) => boolean }
    return { enabled: { info: log.isLevelEnabled('info'), warn: log.isLevelEnabled('warn') } }
  })
  app.get('/child', async (request) => {
    request.log.child({ part: 'inner' }).info('from a child of the request logger')
    return {}
  })
  t.teardown(async () => { await app.close() })
  return { app, lines }
}

t.test('a request logs with its id, at its route level, through redaction', async (t) => {
  const { app, lines } = await server('info')
  const res = await app.inject({ method: 'GET', url: '/quiet' })
  t.strictSame(res.json(), { enabled: { info: false, warn: true } })
  t.equal(lines.length, 1, 'the info line is below the route level')
  t.match(lines[0], { level: 40, msg: 'written with the request id', reqId: res.headers['x-request-id'] ?? /.+/, secret: '[Redacted]' })
  t.not(JSON.stringify(lines), /hunter2/)
})

t.test('a route level wins over the server level (as in Fastify), else the server level applies; children carry the request id', async (t) => {
  const { app, lines } = await server('error')
  await app.inject({ method: 'GET', url: '/quiet' })
  t.equal(lines.length, 1, 'the route says warn: its warning is written')
  await app.inject({ method: 'GET', url: '/child' })
  t.equal(lines.length, 1, 'no route level: info is below the server level')

  const verbose = await server('info')
  await verbose.app.inject({ method: 'GET', url: '/child' })
  t.equal(verbose.lines.length, 1)
  t.match(verbose.lines[0], { msg: 'from a child of the request logger', part: 'inner', reqId: /.+/ })
})
