import t from 'tap'
import { createOrmConfig } from '../../mikro-orm.config.js'
import { DeadlineClient, KEEPALIVE_DELAY_MS, serverTimeouts } from '../../src/db/deadlines.js'

// What each configuration asks of pg; test/routes/write-timeouts.test.ts shows it working.
const clientUrl = 'postgresql://tessera@127.0.0.1:5432/tessera'

t.test('on a server, every statement is bounded on both sides, and connecting too, with keepalive', async (t) => {
  t.strictSame(createOrmConfig({ clientUrl, poolMax: 10, timeout: 2000, statementDeadlines: true, embedded: false }).driverOptions, {
    connectionTimeoutMillis: 2000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    Client: DeadlineClient,
    query_timeout: 2000,
    statement_timeout: 1800,
    idle_in_transaction_session_timeout: 5000
  })
})

t.test('on the embedded database, the deadlines are the client\'s alone (PGlite neither applies nor enforces server-side ones)', async (t) => {
  t.strictSame(createOrmConfig({ clientUrl, poolMax: 1, timeout: 2000, statementDeadlines: true, embedded: true }).driverOptions, {
    connectionTimeoutMillis: 2000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    Client: DeadlineClient,
    query_timeout: 2000
  })
})

t.test('the CLI connects within DATABASE_TIMEOUT_MS with keepalive, and bounds no statement (a migration may take longer)', async (t) => {
  for (const embedded of [false, true]) {
    t.strictSame(createOrmConfig({ clientUrl, poolMax: 1, timeout: 2000, statementDeadlines: false, embedded }).driverOptions, {
      connectionTimeoutMillis: 2000,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS
    }, embedded ? 'embedded' : 'server')
  }
})

t.test('the server cancels a statement a tenth before the client gives up; a transaction may idle twice as long, never less than 5 s', async (t) => {
  t.strictSame(serverTimeouts(100), { statement_timeout: 90, idle_in_transaction_session_timeout: 5000 })
  t.strictSame(serverTimeouts(2000), { statement_timeout: 1800, idle_in_transaction_session_timeout: 5000 })
  t.strictSame(serverTimeouts(10_000), { statement_timeout: 9000, idle_in_transaction_session_timeout: 20_000 })
})

t.test('a client releases its checkout once, and by itself when its connection ends while checked out', async (t) => {
  const client = new DeadlineClient()
  const releases: unknown[] = []
  // As pg-pool does on every checkout.
  client.release = (error) => { releases.push(error) }
  client.emit('end')
  t.match(releases, [{ message: 'the database connection ended while in use' }], 'the ended connection gave its slot back')
  client.release()
  t.equal(releases.length, 1, 'the holder\'s own release later does nothing (pg-pool\'s would throw)')

  client.release = (error) => { releases.push(error ?? 'released') }
  client.release()
  client.emit('end')
  t.strictSame(releases.slice(1), ['released'], 'a connection ending after its release is the pool\'s business')
})
