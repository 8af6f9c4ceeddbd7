import { existsSync } from 'node:fs'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { chromium, type Browser } from 'playwright-core'
import { buildWith, type TestApp, type TestLike } from '../helper.js'

/** The Debian package's Chromium (`.ci/run` installs it); the tests never download a browser. */
export const CHROMIUM = '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export const PASSWORD = 'correct horse battery'

export function chromiumAvailable (): boolean {
  return existsSync(CHROMIUM)
}

export async function launchBrowser (t: TestLike): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(async () => { await browser.close() })
  return browser
}

/** The whole application listening on 127.0.0.1 on a free port; `url` is its origin. */
export async function listen (t: TestLike, env: Record<string, string> = {}): Promise<TestApp & { url: string }> {
  const built = await buildWith(t, env)
  const url = await built.app.listen({ host: '127.0.0.1', port: 0 })
  return { ...built, url }
}

export interface SignedIn {
  /** `name=value`, ready for a Cookie header. */
  cookie: string
  secret: string
  csrf: string
  response: LightMyRequestResponse
}

/** Signs in through the API, as the page does. */
export async function signIn (app: FastifyInstance, username: string, password = PASSWORD, headers: Record<string, string> = {}): Promise<SignedIn> {
  const response = await app.inject({ method: 'POST', url: '/api/v1/session', headers, payload: { username, password } })
  if (response.statusCode !== 201) throw new Error(`sign-in answered ${response.statusCode}: ${response.body}`)
  const setCookie = String(response.headers['set-cookie'])
  const cookie = setCookie.split(';')[0] as string
  return { cookie, secret: cookie.slice(cookie.indexOf('=') + 1), csrf: response.json().csrf_token, response }
}
