import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { Errors } from '../../errors.js'

/** The page and its two assets: fixed names, read once at start, served from memory. */
const FILES = {
  '/settings/tokens': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/settings/assets/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/settings/assets/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' }
} as const

/**
 * Self only, no inline script or style, no framing, no plugins; Trusted Types forbid every
 * HTML-parsing DOM sink, so the page can only build its DOM node by node.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'"
].join('; ')

/** web/ at the top of the repository, seen from src/routes/web/ (tsx, tests) or from dist/src/routes/web/ (the build). */
function webDirectory (): string | null {
  for (const relative of ['../../../web/', '../../../../web/']) {
    const directory = fileURLToPath(new URL(relative, import.meta.url))
    if (existsSync(`${directory}index.html`)) return directory
  }
  return null
}

interface Asset { body: Buffer, type: string, etag: string }

/**
 * The self-service web page, /settings/tokens: one hand-written HTML, JS and CSS file from web/,
 * no framework and no build step. The page is a client of the API (/api/v1/session,
 * /api/v1/tokens…); nothing here touches tokens. Three fixed files do not need a static-file
 * server: no path from the URL ever reaches the file system.
 */
const webPage: FastifyPluginAsync = async function (fastify) {
  const directory = webDirectory()
  if (directory === null) fastify.log.warn('web/ is missing: /settings/tokens answers 404 (install the web/ folder beside dist/)')

  const assets = new Map<string, Asset>()
  for (const [path, { file, type }] of Object.entries(FILES)) {
    if (directory === null) continue
    const body = readFileSync(`${directory}${file}`)
    assets.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` })
  }

  function secure (reply: FastifyReply): FastifyReply {
    return reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('cross-origin-resource-policy', 'same-origin')
      .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()')
  }

  for (const path of Object.keys(FILES)) {
    fastify.get(path, { schema: { hide: true } }, async function (request, reply) {
      secure(reply)
      const asset = assets.get(path)
      if (asset === undefined) throw new Errors.WebPageMissing()
      // The page itself never holds a secret, but it is where one is shown: never stored. Assets revalidate.
      reply.header('cache-control', path === '/settings/tokens' ? 'no-store' : 'no-cache').header('etag', asset.etag)
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
      return reply.type(asset.type).send(asset.body)
    })
  }

  fastify.get('/settings', { schema: { hide: true } }, async function (_request, reply) {
    return secure(reply).redirect('/settings/tokens')
  })
}

export default webPage
