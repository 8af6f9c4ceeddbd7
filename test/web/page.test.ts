import { mkdirSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Page } from 'playwright-core'
import { seedToken, seedUser } from '../helper.js'
import { chromiumAvailable, launchBrowser, listen, PASSWORD } from './helper.js'

/**
 * The self-service page in a real headless Chromium, end to end: sign in, create a token and
 * read it once, use it, rotate it, invalidate it, sign out — and a page on another origin that
 * tries to act with the signed-in session. With SCREENSHOTS=1 the main states are written to
 * docs/screenshots/.
 */

// A real browser or no test: like nginx for the gateway test, Chromium is a machine package.
if (!chromiumAvailable()) throw new Error('Chromium is not installed: apt-get install chromium (.ci/run does it in CI)')

const SCREENSHOTS = process.env.SCREENSHOTS === '1'
const SCREENSHOT_DIR = new URL('../../docs/screenshots/', import.meta.url)
if (SCREENSHOTS) mkdirSync(SCREENSHOT_DIR, { recursive: true })

async function screenshot (page: Page, name: string, fullPage = true): Promise<void> {
  if (!SCREENSHOTS) return
  await page.screenshot({ path: new URL(`${name}.png`, SCREENSHOT_DIR).pathname, fullPage, animations: 'disabled', caret: 'hide' })
}

const { app, url } = await listen(t)
const sql = async <T = unknown>(query: string, params: unknown[] = []): Promise<T[]> => await app.orm.em.getConnection().execute<T[]>(query, params)

// Alice already has a few tokens, oldest first: one expired, one used recently, one about to expire.
await seedUser(app, 'alice')
const laptop = await seedToken(app, 'alice', { name: 'old laptop', scopes: ['read:repository'], expires_in: 86400 })
await sql('update access_tokens set created_at = now() - interval \'92 days\', expires_at = now() - interval \'2 days\' where id = ?', [laptop.id])
const release = await seedToken(app, 'alice', { name: 'release pipeline', scopes: ['write:repository'], audience: ['git.example.com'], expires_in: 180 * 86400 })
await sql('update access_tokens set created_at = now() - interval \'40 days\', last_used_at = now() - interval \'3 minutes\', last_used_ip = \'192.0.2.10\' where id = ?', [release.id])
const scraper = await seedToken(app, 'alice', { name: 'metrics scraper', scopes: ['read:tokens'], expires_in: 3 * 86400 + 3600 })
await sql('update access_tokens set created_at = now() - interval \'12 days\' where id = ?', [scraper.id])

async function tokenInfo (token: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`${url}/oauth/token/info`, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

const browser = await launchBrowser(t)
const context = await browser.newContext({ viewport: { width: 1000, height: 800 }, colorScheme: 'light', locale: 'en-GB', timezoneId: 'UTC' })
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url })
context.setDefaultTimeout(10_000)
const page = await context.newPage()

// Every request the browser makes, and every console error (CSP violations show up there).
const requested: string[] = []
const consoleErrors: string[] = []
context.on('request', (request) => { requested.push(request.url()) })
page.on('console', (message) => {
  // Chromium logs every non-2xx fetch as "Failed to load resource"; the page handles those itself.
  if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) consoleErrors.push(message.text())
})
page.on('pageerror', (error) => { consoleErrors.push(error.message) })

/** The id of the focused element (the test code has no DOM types: the page's expressions are strings). */
const focused = async (): Promise<unknown> => await page.evaluate('document.activeElement?.id')
const card = (name: string) => page.locator('li.token', { has: page.locator('h3', { hasText: new RegExp(`^${name}$`) }) })
const freshValue = page.locator('#fresh-value')
let sessionCookie = ''
let created = ''
let rotated = ''

t.test('signed out, the page offers a sign-in form and nothing else', async (t) => {
  await page.goto(`${url}/settings/tokens`)
  await page.locator('#sign-in').waitFor({ state: 'visible' })
  t.equal(await page.title(), 'Your access tokens · Tessera')
  t.equal(await page.getByLabel('Username').isVisible(), true, 'labelled fields')
  t.equal(await page.getByLabel('Password').isVisible(), true)
  t.equal(await page.locator('#signed-in').isVisible(), false)
  await screenshot(page, 'signed-out')
})

t.test('a wrong password is refused, with the reason shown and focus back on the password', async (t) => {
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('not my password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#alert').waitFor({ state: 'visible' })
  t.equal(await page.locator('#alert').textContent(), 'Sign-in failed: wrong username or password.')
  t.equal(await page.locator('#signed-in').isVisible(), false)
  t.strictSame(await context.cookies(), [], 'no session cookie')
  t.equal(await focused(), 'password')
  t.equal(await page.getByLabel('Password').inputValue(), '', 'the wrong password is cleared')
})

t.test('signing in with the keyboard alone shows the tokens, newest first', async (t) => {
  await page.getByLabel('Password').focus()
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  // The page announces the sign-in once the list is loaded and focus has moved to it.
  await page.locator('#status', { hasText: 'Signed in as alice.' }).waitFor()
  t.equal(await page.locator('#account-name').textContent(), 'alice')
  t.equal(await focused(), 'list-title', 'focus moves to the list')
  t.strictSame(await page.locator('li.token h3').allTextContents(), ['metrics scraper', 'release pipeline', 'old laptop'])
  t.equal(await page.locator('#pager').isVisible(), false, 'one page: no pager')

  const cookies = await context.cookies()
  t.equal(cookies.length, 1)
  t.match(cookies[0], { name: 'tessera_session', httpOnly: true, sameSite: 'Strict', path: '/' })
  sessionCookie = `${cookies[0]?.name}=${cookies[0]?.value}`
  t.equal(await page.evaluate('document.cookie'), '', 'the page\'s script cannot read the session')
})

t.test('each token shows its scopes, audience, application, dates, expiry state and last use with its precision', async (t) => {
  const releaseText = await card('release pipeline').textContent() ?? ''
  t.match(releaseText, /write:repository/)
  t.match(releaseText, /git\.example\.com/)
  t.match(releaseText, /Tessera \(first-party\)/)
  t.match(releaseText, /Expires in 6 months \(/)
  t.match(releaseText, /About 3 minutes ago \(± 1 minute\), from 192\.0\.2\.10/)
  t.match(releaseText, new RegExp(`…${release.token.slice(-8)}`))
  t.match(await card('old laptop').textContent(), /\sexpired\s[\s\S]*Expired 2 days ago \(/)
  t.match(await card('metrics scraper').textContent(), /\sactive\s[\s\S]*Expires in 3 days \(/)
  t.equal(await card('metrics scraper').locator('.expiring-soon').count(), 1, 'three days left stands out')
  t.match(await card('metrics scraper').locator('.expiring-soon').textContent(), /^⚠ Expires in 3 days/)
  t.equal(await card('release pipeline').locator('.expiring-soon').count(), 0, 'six months left does not')
  t.equal(await card('old laptop').locator('.expiring-soon').count(), 0, 'nor an expired one (its badge says so)')
  t.match(await card('metrics scraper').textContent(), /Any service/)
  t.match(await card('metrics scraper').textContent(), /Never recorded/)
  t.match(await page.locator('#list-hint').textContent(), /“Last used” is approximate: uses are written every minute, so the latest may not show yet\./)
  t.equal(await card('old laptop').getByRole('button', { name: /^Regenerate/ }).isDisabled(), true, 'an expired token cannot be regenerated')
  await screenshot(page, 'token-list')
})

t.test('creating a token shows it once, with a warning and a copy button', async (t) => {
  await page.getByLabel('Name', { exact: true }).fill('ci-deploy')
  t.equal(await page.getByLabel('read:tokens', { exact: true }).getAttribute('aria-describedby') !== null, true)
  t.match(await page.locator('.scope', { has: page.getByText('read:tokens', { exact: true }) }).textContent(), /Review the owner's own tokens/, 'scopes come with their descriptions')
  t.equal(await page.getByLabel('admin', { exact: true }).count(), 0, 'admin is not offered to a non-admin')
  await page.getByLabel('read:tokens', { exact: true }).check()
  await page.getByLabel('read:repository', { exact: true }).check()
  t.strictSame(await page.locator('#token-expiry option').allTextContents(), ['1 day', '7 days', '30 days', '90 days', '1 year'])
  t.equal(await page.locator('#token-expiry').inputValue(), '7776000', 'the configured default is preselected')
  await page.getByLabel('Expires after').selectOption({ label: '7 days' })
  await page.getByRole('button', { name: 'Create token' }).click()

  await page.locator('#fresh').waitFor({ state: 'visible' })
  created = await freshValue.inputValue()
  t.match(created, /^tsr_[A-Za-z0-9]{38}$/)
  t.match(await page.locator('#fresh').textContent(), /This is the only time it is shown\./)
  t.equal(await focused(), 'fresh', 'focus moves to the new token')
  t.equal(await page.getByRole('button', { name: 'Regenerate “release pipeline”' }).isDisabled(), true, 'Regenerate waits while a fresh token is on screen')
  t.equal(await page.locator('#rotate-paused').isVisible(), true)
  t.match(await card('ci-deploy').textContent(), /read:repository, read:tokens/)
  t.match(await card('ci-deploy').textContent(), /Expires in 7 days/)

  await page.getByRole('button', { name: 'Copy' }).click()
  await page.locator('#copy-result', { hasText: 'Copied to the clipboard.' }).waitFor()
  t.equal(await page.evaluate('navigator.clipboard.readText()'), created, 'the copy button copies the token')
  await screenshot(page, 'token-shown-once')
})

t.test('the new token works', async (t) => {
  const info = await tokenInfo(created)
  t.equal(info.status, 200)
  t.strictSame(info.body.scope, ['read:repository', 'read:tokens'])
})

t.test('after a reload the token is gone for good', async (t) => {
  await page.reload()
  await page.locator('#signed-in').waitFor({ state: 'visible' })
  // The list is fetched after the page shows the session: wait for it, or the checks below race it.
  await card('ci-deploy').waitFor({ state: 'visible', timeout: 10_000 }).catch(() => {})
  t.equal(await page.locator('#fresh').isVisible(), false)
  t.notOk((await page.content()).includes(created), 'the plaintext is nowhere in the page')
  t.ok(await card('ci-deploy').isVisible(), 'the token is listed, by name')
  t.match(await card('ci-deploy').textContent(), new RegExp(`…${created.slice(-8)}`), 'with its last eight characters only')
})

t.test('Regenerate asks first, shows the new secret once, and the old one dies', async (t) => {
  await card('ci-deploy').getByRole('button', { name: 'Regenerate “ci-deploy”' }).click()
  await page.locator('#confirm').waitFor({ state: 'visible' })
  t.equal(await page.locator('#confirm-title').textContent(), 'Regenerate “ci-deploy”?')
  t.equal(await focused(), 'confirm-cancel', 'the safe choice has focus')
  await page.locator('#confirm-ok').click()
  await page.locator('#fresh').waitFor({ state: 'visible' })
  rotated = await freshValue.inputValue()
  t.not(rotated, created)
  t.match(rotated, /^tsr_/)
  t.equal((await tokenInfo(created)).status, 401, 'the old secret is dead')
  t.equal((await tokenInfo(rotated)).status, 200, 'the new one works')
  t.equal(await card('ci-deploy').count(), 1, 'one ci-deploy: the rotated one is listed, the old one is not')

  await page.getByRole('button', { name: 'I have stored it — hide the token' }).click()
  t.equal(await page.locator('#fresh').isVisible(), false)
  t.equal(await freshValue.inputValue(), '', 'the field is emptied')
  t.equal(await card('ci-deploy').getByRole('button', { name: /^Regenerate/ }).isDisabled(), false, 'Regenerate is back')
  t.equal(await focused(), 'list-title')
})

t.test('a page on another origin cannot act with the session (CSRF)', async (t) => {
  const victim = await page.locator('li.token[data-state="active"]').first().getAttribute('data-token-id') as string
  t.ok(victim)
  // Same host, another port: the same *site*, so SameSite=Strict still sends the cookie. The
  // Origin and Sec-Fetch-Site checks and the CSRF token are what stop it.
  const attacker: Server = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html; charset=utf-8')
    response.end(`<!doctype html><title>evil</title>
<form id="f" method="post" action="${url}/api/v1/tokens/${victim}/invalidate"></form>
<script>
  fetch('${url}/api/v1/tokens/${victim}/invalidate', { method: 'POST', credentials: 'include', mode: 'no-cors' })
    .then(() => fetch('${url}/api/v1/tokens', { method: 'POST', credentials: 'include', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"name":"planted","scopes":["read:tokens"]}' }))
    .finally(() => { document.title = 'sent'; document.getElementById('f').submit() })
</script>`)
  })
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => attacker.close(() => resolve())))
  const attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`

  const statuses: Array<{ url: string, status: number }> = []
  const evil = await context.newPage()
  evil.on('response', (response) => { if (response.url().startsWith(url)) statuses.push({ url: response.url(), status: response.status() }) })
  await evil.goto(attackerUrl)
  await evil.waitForURL(`${url}/api/v1/tokens/${victim}/invalidate`)
  await evil.close()

  t.strictSame(statuses.map((entry) => entry.status), [403, 403, 403], 'the two fetches and the form post are all refused')
  const still = await fetch(`${url}/api/v1/tokens/${victim}`, { headers: { cookie: sessionCookie } })
  t.equal((await still.json() as { state: string }).state, 'active', 'the token is untouched')
  const planted = await sql('select 1 from access_tokens where name = ?', ['planted'])
  t.equal(planted.length, 0, 'nothing was created')

  // A forged request outside a browser: the cookie, a foreign Origin, no CSRF token.
  const forged = await fetch(`${url}/api/v1/tokens/${victim}/invalidate`, { method: 'POST', headers: { cookie: sessionCookie, origin: attackerUrl.slice(0, -1) } })
  t.equal(forged.status, 403)
  t.equal((await forged.json() as { code: string }).code, 'TESSERA_CROSS_ORIGIN')
})

t.test('Invalidate asks for confirmation; cancelling keeps the token, confirming kills it', async (t) => {
  const invalidate = card('ci-deploy').getByRole('button', { name: 'Invalidate “ci-deploy”' })
  await invalidate.click()
  await page.locator('#confirm').waitFor({ state: 'visible' })
  t.equal(await page.locator('#confirm-title').textContent(), 'Invalidate “ci-deploy”?')
  await page.keyboard.press('Escape')
  await page.locator('#confirm').waitFor({ state: 'hidden' })
  t.equal((await tokenInfo(rotated)).status, 200, 'Escape cancels')
  t.equal(await page.evaluate('document.activeElement?.textContent'), 'Invalidate “ci-deploy”', 'focus returns to the button')

  await invalidate.click()
  await page.locator('#confirm').waitFor({ state: 'visible' })
  await screenshot(page, 'confirm-invalidate', false)
  await page.locator('#confirm-ok').click()
  await page.locator('#status', { hasText: 'Token “ci-deploy” was invalidated.' }).waitFor()
  t.equal(await card('ci-deploy').count(), 0, 'gone from the list')
  t.equal((await tokenInfo(rotated)).status, 401, 'and dead')
  t.equal(await focused(), 'list-title')
})

t.test('on a phone the page fits the screen', async (t) => {
  await page.setViewportSize({ width: 390, height: 844 })
  await page.reload()
  await page.locator('#signed-in').waitFor({ state: 'visible' })
  t.ok(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), 'no horizontal scrolling')
  await screenshot(page, 'phone')
  await page.setViewportSize({ width: 1000, height: 800 })
})

t.test('signing out ends the session on the server', async (t) => {
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.locator('#sign-in').waitFor({ state: 'visible' })
  t.equal(await focused(), 'username')
  t.strictSame(await context.cookies(), [], 'the cookie is cleared')
  const replay = await fetch(`${url}/api/v1/tokens`, { headers: { cookie: sessionCookie } })
  t.equal(replay.status, 401, 'a copy of the old cookie no longer works')
  t.equal((await replay.json() as { code: string }).code, 'TESSERA_SESSION_ENDED')
  await page.reload()
  await page.locator('#sign-in').waitFor({ state: 'visible' })
})

t.test('more tokens than a page holds: Older and Newer follow the API\'s Link header', async (t) => {
  await seedUser(app, 'paul')
  for (let i = 1; i <= 23; i++) await seedToken(app, 'paul', { name: `bot-${String(i).padStart(2, '0')}`, scopes: ['read:repository'] })
  await page.getByLabel('Username').fill('paul')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#signed-in').waitFor({ state: 'visible' })
  const names = async (): Promise<string[]> => await page.locator('li.token h3').allTextContents()
  t.equal((await names()).length, 20)
  t.equal((await names())[0], 'bot-23', 'newest first')
  t.equal(await page.getByRole('button', { name: '← Newer' }).isDisabled(), true)
  await page.getByRole('button', { name: 'Older →' }).click()
  await page.locator('li.token h3', { hasText: 'bot-01' }).waitFor()
  t.strictSame(await names(), ['bot-03', 'bot-02', 'bot-01'])
  t.equal(await page.getByRole('button', { name: 'Older →' }).isDisabled(), true, 'the last page')
  t.ok(requested.some((address) => address.includes('/api/v1/tokens?') && address.includes('max_id=')), 'through the keyset API')
  await page.getByRole('button', { name: '← Newer' }).click()
  await page.locator('li.token h3', { hasText: 'bot-23' }).waitFor()
  t.equal((await names()).length, 20)
  t.equal(await page.getByRole('button', { name: '← Newer' }).isDisabled(), true, 'back on the newest page')
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.locator('#sign-in').waitFor({ state: 'visible' })
})

t.test('no secret ever went into a URL, and the page broke no policy', async (t) => {
  for (const secret of [PASSWORD, created, rotated, sessionCookie.split('=')[1] as string]) {
    t.notOk(requested.some((address) => address.includes(secret)), 'not in any requested URL')
  }
  t.ok(requested.every((address) => address.startsWith(url) || address.startsWith('http://127.0.0.1:') || address.startsWith('data:')), 'nothing fetched from elsewhere')
  t.strictSame(consoleErrors, [], 'no script error, no CSP violation')
})

t.test('without the first-party application the page warns instead of breaking', async (t) => {
  await seedUser(app, 'nina')
  await page.getByLabel('Username').fill('nina')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#signed-in').waitFor({ state: 'visible' })
  t.equal(await page.locator('#internal-missing').isVisible(), false)

  // It disappears while the page is open: creation answers 503 and the page turns to the warning.
  await sql('delete from applications where client_id = ?', ['internal'])
  await page.getByLabel('Name', { exact: true }).fill('too late')
  await page.getByLabel('read:tokens', { exact: true }).check()
  await page.getByRole('button', { name: 'Create token' }).click()
  await page.locator('#internal-missing').waitFor({ state: 'visible' })
  t.match(await page.locator('#alert').textContent(), /the built-in first-party application "internal" is missing/)
  t.equal(await page.getByRole('button', { name: 'Create token' }).isDisabled(), true)

  // And on the next load the page knows it from the start, with no error.
  await page.reload()
  await page.locator('#signed-in').waitFor({ state: 'visible' })
  t.equal(await page.locator('#internal-missing').isVisible(), true)
  t.match(await page.locator('#internal-missing').textContent(), /tessera ensure-internal-app/)
  t.equal(await page.getByRole('button', { name: 'Create token' }).isDisabled(), true)
  t.equal(await page.locator('#alert').isVisible(), false, 'a warning, not an error')
  t.strictSame(consoleErrors, [], 'no script error')
})
