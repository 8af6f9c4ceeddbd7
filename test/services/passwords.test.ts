import { performance } from 'node:perf_hooks'
import argon2 from 'argon2'
import t, { type Test } from 'tap'
import { User } from '../../src/entities/user.js'
import { PasswordHasher } from '../../src/services/passwords.js'
import { authenticateUser } from '../../src/services/users.js'
import { build, seedUser, TEST_ENV } from '../helper.js'

const CHEAP = { memoryCost: Number(TEST_ENV.ARGON2_MEMORY_COST), timeCost: Number(TEST_ENV.ARGON2_TIME_COST) }

/** Counts the argon2 verifications that really run, whoever calls them. */
function countArgon2 (t: Test): { runs: number } {
  const counter = { runs: 0 }
  const verify = argon2.verify
  argon2.verify = async function (...args: Parameters<typeof verify>) {
    counter.runs++
    return await verify(...args)
  }
  t.teardown(() => { argon2.verify = verify })
  return counter
}

async function median (runs: number, work: (i: number) => Promise<unknown>): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const started = performance.now()
    await work(i)
    times.push(performance.now() - started)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(runs / 2)] ?? 0
}

t.test('an unknown account (no hash) runs no argon2 and takes as long as a wrong password for a real one (it burned argon2 CPU, and took 0.4–0.96 s against 0.08 s after a cost change)', async (t) => {
  // Dearer than the suite's argon2, so the durations stand out from timer and scheduling noise.
  const hasher = new PasswordHasher({ memoryCost: 8192, timeCost: 2 })
  const stored = await hasher.hash('the real password')
  await hasher.calibrate()
  const known = await median(9, async (i) => await hasher.verify(stored, `wrong guess ${i}`))
  const argon2Runs = countArgon2(t)
  const unknown = await median(9, async (i) => await hasher.verify(null, `wrong guess ${i}`))
  t.equal(argon2Runs.runs, 0, 'no argon2 for an account without a hash')
  t.ok(unknown >= known * 0.5 && unknown <= known * 2 + 5, `unknown ${unknown.toFixed(1)} ms against known ${known.toFixed(1)} ms`)
  t.equal(await hasher.verify(undefined, 'x'), false)
  t.equal(await hasher.verify('', 'x'), false)
})

t.test('before any verification the wait is measured once, then follows the real verifications', async (t) => {
  const hasher = new PasswordHasher(CHEAP)
  t.equal(hasher.averageVerificationMs, undefined)
  const argon2Runs = countArgon2(t)
  t.equal(await hasher.verify(null, 'x'), false)
  t.equal(argon2Runs.runs, 1, 'one calibration run')
  const calibrated = hasher.averageVerificationMs
  t.type(calibrated, 'number')
  await hasher.verify(null, 'y')
  t.equal(argon2Runs.runs, 1, 'measured once only')
  await hasher.verify(await hasher.hash('secret'), 'secret')
  t.equal(argon2Runs.runs, 2)
  t.not(hasher.averageVerificationMs, calibrated, 'a real verification moves the average')
})

t.test('at most `concurrency` argon2 runs at once and `queue` waiting; beyond, 503 TESSERA_BUSY with Retry-After: 1', async (t) => {
  const hasher = new PasswordHasher({ ...CHEAP, concurrency: 1, queue: 1 })
  const stored = await hasher.hash('secret')
  await hasher.calibrate()
  const release = await hasher.slots.acquire()
  const queued = hasher.verify(stored, 'secret')
  await t.rejects(hasher.verify(stored, 'secret'), { code: 'TESSERA_BUSY', statusCode: 503, oauthError: 'temporarily_unavailable', exposed: true, retryAfter: 1 })
  await t.rejects(hasher.verify(null, 'secret'), { code: 'TESSERA_BUSY' }, 'an unknown account is refused the same way: being busy tells nothing')
  await t.rejects(hasher.hash('another'), { code: 'TESSERA_BUSY' }, 'hashing shares the slots')
  t.equal(hasher.slots.waiting, 1)
  release()
  t.equal(await queued, true, 'the queued verification runs once a slot is free')
  t.equal(hasher.slots.active, 0)
})

t.test('the default concurrency is the cores Node may use, with a queue of 16 per core', async (t) => {
  const { availableParallelism } = await import('node:os')
  const hasher = new PasswordHasher(CHEAP)
  t.equal(hasher.slots.capacity, availableParallelism())
  t.equal(hasher.slots.queue, availableParallelism() * 16)
})

t.test('a hash made with other parameters needs re-hashing, and upgrade makes one with the current ones', async (t) => {
  const old = new PasswordHasher({ memoryCost: 2048, timeCost: 1 })
  const current = new PasswordHasher(CHEAP)
  const oldHash = await old.hash('secret')
  t.equal(current.needsRehash(oldHash), true)
  t.equal(current.needsRehash(await current.hash('secret')), false)
  t.equal(current.needsRehash(await argon2.hash('secret', { type: argon2.argon2i, ...CHEAP, parallelism: 1 })), true, 'argon2i is replaced by argon2id')
  const upgraded = await current.upgrade(oldHash, 'secret')
  t.type(upgraded, 'string')
  t.equal(current.needsRehash(upgraded ?? ''), false)
  t.equal(await current.verify(upgraded, 'secret'), true)
  t.equal(await current.upgrade(upgraded ?? '', 'secret'), null, 'nothing to do with the current parameters')
})

t.test('a password hashed with other argon2 parameters is re-hashed with the current ones at the next successful sign-in', async (t) => {
  const app = await build(t)
  const user = await seedUser(app, 'carol', { password: 'correct horse battery' })
  const dearer = await new PasswordHasher({ memoryCost: 2048, timeCost: 2 }).hash('correct horse battery')
  await app.orm.em.fork().nativeUpdate(User, { id: user.id }, { passwordHash: dearer })

  const outcome = await authenticateUser(app.orm.em.fork(), app.services.hasher, 'carol', 'correct horse battery')
  t.equal(outcome.status, 'authenticated')
  if (outcome.status !== 'authenticated') return
  t.ok(outcome.rehashed !== null, 'a re-hash is under way')
  await outcome.rehashed
  const stored = (await app.orm.em.fork().findOneOrFail(User, user.id, { populate: ['passwordHash'] })).passwordHash ?? ''
  t.not(stored, dearer)
  t.equal(app.services.hasher.needsRehash(stored), false, 'stored with the configured parameters')
  t.equal(await argon2.verify(stored, 'correct horse battery'), true)

  const again = await authenticateUser(app.orm.em.fork(), app.services.hasher, 'carol', 'correct horse battery')
  t.equal(again.status === 'authenticated' ? again.rehashed : 'not authenticated', null, 'nothing to re-hash the next time')
})
