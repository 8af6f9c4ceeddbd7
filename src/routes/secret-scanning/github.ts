import { hash } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AccessToken } from '../../entities/access-token.js'
import { Errors } from '../../errors.js'
import { actorFromRequest } from '../../http/actor.js'
import { problems } from '../../../schemas/common.js'
import { recordAudit } from '../../services/audit.js'
import { GithubSignatureVerifier, keyDocumentLoader, type LeakReport } from '../../services/secret-scanning.js'
import { isWellFormedToken } from '../../services/token-format.js'
import { revokeToken } from '../../services/tokens.js'

const BODY_LIMIT = 1024 * 1024

const Report = Type.Array(Type.Object({
  token: Type.String({ minLength: 1, maxLength: 1000 }),
  type: Type.String({ maxLength: 200 }),
  url: Type.String({ maxLength: 2048 }),
  source: Type.String({ maxLength: 200 })
}), { maxItems: 1000, description: 'What GitHub found: the matched string, the pattern\'s name, where it was found' })

const Label = Type.Union([Type.Literal('true_positive'), Type.Literal('false_positive')])
const Analysis = Type.Array(Type.Object({
  token_hash: Type.String({ description: 'SHA-256 of the reported string, hex: the raw token is never sent back' }),
  token_type: Type.String(),
  label: Label
}))

/**
 * POST /api/v1/secret-scanning/github — GitHub's secret-scanning partner endpoint. A report is
 * verified against GitHub's published keys before anything else is read from it; then each
 * reported string that is one of this server's tokens is revoked at once (if still live) and a
 * `token.leaked` audit event records where it was found. The answer labels each string
 * `true_positive` (one of our tokens, live or not) or `false_positive`; a string whose checksum
 * does not verify is false without a database lookup. Served only with SECRET_SCANNING_GITHUB_KEYS.
 */
const githubSecretScanning: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, services } = fastify
  if (config.SECRET_SCANNING_GITHUB_KEYS === '') return
  const verifier = new GithubSignatureVerifier(keyDocumentLoader(config.SECRET_SCANNING_GITHUB_KEYS))

  // The signature covers the bytes as sent: keep them (this plugin's routes only) and parse JSON
  // after the signature is checked.
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) => { done(null, body) })

  fastify.post('/api/v1/secret-scanning/github', {
    bodyLimit: BODY_LIMIT,
    schema: {
      tags: ['secret-scanning'],
      summary: 'Leaked-token reports from GitHub secret scanning',
      description: 'Signed by GitHub (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`: ECDSA P-256 over the raw body). ' +
        'Each reported string that is one of this server\'s tokens is revoked at once and recorded as `token.leaked` with the URL it was found at. ' +
        'An unsigned or wrongly signed request gets 401 and learns nothing about any token.',
      security: [],
      body: Report,
      response: { 200: Analysis, ...problems(400, 401, 413, 415, 503) }
    },
    // Before validation: the body is still the raw bytes, and nothing is parsed from an unsigned report.
    preValidation: async function verifySignature (request) {
      const keyId = request.headers['github-public-key-identifier']
      const signature = request.headers['github-public-key-signature']
      const raw = request.body as unknown
      if (typeof keyId !== 'string' || typeof signature !== 'string' || !Buffer.isBuffer(raw)) throw new Errors.ReportSignatureInvalid()
      const check = await verifier.check(keyId, signature, raw)
      if (check === 'keys-unavailable') throw new Errors.ReportKeysUnavailable()
      if (check !== 'valid') throw new Errors.ReportSignatureInvalid()
      try {
        request.body = JSON.parse(raw.toString('utf8')) as LeakReport[]
      } catch {
        throw new Errors.ReportNotJson()
      }
    }
  }, async function (request) {
    const actor = actorFromRequest(request, null, 'github-secret-scanning')
    const em = fastify.orm.em.fork()
    const labels = new Map<string, 'true_positive' | 'false_positive'>()
    const revoked: string[] = []
    const mails: Array<{ to: string, owner: string, token: string, url: string, revoked: boolean }> = []
    for (const report of request.body) {
      if (labels.has(report.token)) continue
      // Another deployment's prefix, a typo, a random match: no lookup.
      if (!isWellFormedToken(report.token, config.TOKEN_PREFIX)) {
        labels.set(report.token, 'false_positive')
        continue
      }
      const digest = services.digester.digest(report.token)
      const leaked = await em.transactional(async (tx) => {
        const token = await tx.findOne(AccessToken, { digest }, { populate: ['user'] })
        if (token === null) return null
        const live = token.expiresAt == null || token.expiresAt > new Date()
        const revokedNow = live && revokeToken(tx, token, actor, 'leaked: reported by GitHub secret scanning')
        recordAudit(tx, actor, 'token.leaked', { type: 'token', id: token.id, label: token.name }, { url: report.url, source: report.source, type: report.type, revoked: revokedNow })
        const owner = token.user === null || token.user === undefined ? null : { username: token.user.username, email: token.user.email ?? null }
        return { id: token.id, name: token.name, revokedNow, owner }
      })
      labels.set(report.token, leaked === null ? 'false_positive' : 'true_positive')
      if (leaked?.revokedNow === true) revoked.push(leaked.id)
      if (leaked?.owner?.email != null) mails.push({ to: leaked.owner.email, owner: leaked.owner.username, token: leaked.name, url: report.url, revoked: leaked.revokedNow })
    }
    // Inactive on every replica before GitHub hears back.
    if (revoked.length > 0) await services.invalidation.tokens(revoked)
    // The owner hears of it by mail too (SMTP_URL), after GitHub has its answer and best effort:
    // the token.leaked event is the record.
    const mailer = services.mailer
    if (mailer !== null && mails.length > 0) {
      const sending = Promise.all(mails.map(async (mail) => { await mailer.leaked(mail.to, mail.owner, mail.token, mail.url, mail.revoked) }))
      sending.catch((error: unknown) => { request.log.warn({ err: error }, 'could not mail the owner of a leaked token') })
    }
    request.log.warn({ reported: request.body.length, leaked: [...labels.values()].filter((label) => label === 'true_positive').length, revoked: revoked.length }, 'secret-scanning report from GitHub')
    return request.body.map((report) => ({ token_hash: hash('sha256', report.token, 'hex'), token_type: report.type, label: labels.get(report.token)! }))
  })
}

export default githubSecretScanning
