import { generateKeyPairSync, sign } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SMTPServer } from 'smtp-server'
import t from 'tap'
import { User } from '../../src/entities/user.js'
import { buildWith, freePort, seedToken, seedUser } from '../helper.js'

/*
 * Mail to token owners (SMTP_URL): expiry notices and leak reports, received by a real local SMTP
 * server (smtp-server). Best effort: the events are the record, a mail server that is down
 * changes nothing else.
 */

interface Mail { from: string, to: string[], raw: string }
const received: Mail[] = []
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData (stream, session, callback) {
    let raw = ''
    stream.on('data', (chunk: Buffer) => { raw += chunk.toString('utf8') })
    stream.on('end', () => {
      received.push({ from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((rcpt) => rcpt.address), raw })
      callback()
    })
  }
})
const smtpPort = await freePort()
await new Promise<void>((resolve) => smtp.listen(smtpPort, '127.0.0.1', resolve))
t.teardown(async () => { await new Promise<void>((resolve) => smtp.close(() => { resolve() })) })

// GitHub's key for the leak report, published in a file.
const github = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const directory = await mkdtemp(join(tmpdir(), 'tessera-mail-'))
t.teardown(async () => { await rm(directory, { recursive: true, force: true }) })
const keys = join(directory, 'keys.json')
await writeFile(keys, JSON.stringify({ public_keys: [{ key_identifier: 'k1', key: github.publicKey.export({ type: 'spki', format: 'pem' }).toString(), is_current: true }] }))

const { app } = await buildWith(t, { SMTP_URL: `smtp://127.0.0.1:${smtpPort}`, PUBLIC_URL: 'https://tessera.test', SECRET_SCANNING_GITHUB_KEYS: keys })

async function withEmail (username: string, email: string | null): Promise<void> {
  await seedUser(app, username)
  const em = app.orm.em.fork()
  const user = await em.findOneOrFail(User, { username })
  user.email = email
  await em.flush()
}

async function expiresIn (id: string, days: number): Promise<void> {
  await app.orm.em.getConnection().execute('update access_tokens set created_at = now() - interval \'100 days\', expires_at = now() + make_interval(secs => ?) where id = ?', [days * 86400, id], 'run')
}

/** The subject and the text of a received message (headers unfolded, quoted-printable decoded). */
function read (mail: Mail): { subject: string, text: string } {
  const raw = mail.raw.replace(/\r\n/g, '\n')
  const split = raw.indexOf('\n\n')
  const headers = raw.slice(0, split).replace(/\n[ \t]+/g, ' ')
  const text = raw.slice(split + 2).replace(/=\n/g, '').replace(/=([0-9A-F]{2})/g, (_whole, hex: string) => String.fromCharCode(parseInt(hex, 16)))
  // RFC 2047 encoded words (=?UTF-8?Q?…?=), the whitespace between two of them dropped.
  const subject = (/^Subject: (.*)$/m.exec(headers)?.[1] ?? '')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?UTF-8\?Q\?(.*?)\?=/gi, (_whole, word: string) => word.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/g, (_hex, hex: string) => String.fromCharCode(parseInt(hex, 16))))
  return { subject, text }
}

async function eventually (what: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!what() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  return what()
}

t.test('an expiry notice is mailed to the owner, from tessera@ the public host, with a link to the tokens page', async (t) => {
  await withEmail('alice', 'alice@example.test')
  const { id } = await seedToken(app, 'alice', { name: 'deploy', scopes: ['read:tokens'] })
  await expiresIn(id, 6)
  const before = received.length
  t.equal((await app.services.expiryNotices.run()).length, 1)
  t.ok(await eventually(() => received.length === before + 1), 'one mail')
  const mail = received.at(-1)!
  t.strictSame(mail.to, ['alice@example.test'])
  t.equal(mail.from, 'tessera@tessera.test')
  t.equal(read(mail).subject, 'Your Tessera token "deploy" expires in 7 days')
  t.match(read(mail).text, 'Your tokens: https://tessera.test/settings/tokens')
  t.notMatch(mail.raw, /tsr_[A-Za-z0-9]{38}/, 'never the token itself')

  await expiresIn(id, -0.01)
  await app.services.expiryNotices.run()
  t.ok(await eventually(() => received.length === before + 2))
  t.equal(read(received.at(-1)!).subject, 'Your Tessera token "deploy" has expired')
})

t.test('no address, no mail; the notice is recorded all the same', async (t) => {
  await withEmail('bob', null)
  const { id } = await seedToken(app, 'bob', { name: 'quiet', scopes: ['read:tokens'] })
  await expiresIn(id, 6)
  const before = received.length
  t.match(await app.services.expiryNotices.run(), [{ owner: 'bob', days: 7, email: null }])
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(received.length, before)
})

t.test('a leaked token: the owner is told it was found and revoked', async (t) => {
  await withEmail('carol', 'carol@example.test')
  const leaked = await seedToken(app, 'carol', { name: 'pushed', scopes: ['read:tokens'] })
  const body = JSON.stringify([{ token: leaked.token, type: 'tessera_token', url: 'https://github.com/carol/site/blob/main/.env', source: 'content' }])
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/secret-scanning/github',
    payload: body,
    headers: { 'content-type': 'application/json', 'github-public-key-identifier': 'k1', 'github-public-key-signature': sign('sha256', Buffer.from(body), { key: github.privateKey, dsaEncoding: 'der' }).toString('base64') }
  })
  t.equal(res.statusCode, 200)
  t.ok(await eventually(() => received.some((mail) => mail.to.includes('carol@example.test'))))
  const mail = received.find((item) => item.to.includes('carol@example.test'))!
  t.equal(read(mail).subject, 'Your Tessera token "pushed" was found in public and revoked')
  t.match(read(mail).text, 'at https://github.com/carol/site/blob/main/.env')
})

t.test('a mail server that is down changes nothing but the mail', async (t) => {
  const { app: unreachable } = await buildWith(t, { SMTP_URL: `smtp://127.0.0.1:${await freePort()}` })
  await seedUser(unreachable, 'dave')
  const em = unreachable.orm.em.fork()
  const dave = await em.findOneOrFail(User, { username: 'dave' })
  dave.email = 'dave@example.test'
  await em.flush()
  const { id } = await seedToken(unreachable, 'dave', { name: 'lonely', scopes: ['read:tokens'] })
  await unreachable.orm.em.getConnection().execute('update access_tokens set created_at = now() - interval \'100 days\', expires_at = now() + interval \'5 days\' where id = ?', [id], 'run')
  t.match(await unreachable.services.expiryNotices.run(), [{ tokenName: 'lonely', days: 7 }], 'recorded and returned')
  t.strictSame(await unreachable.services.expiryNotices.run(), [], 'and not sent again')
})
