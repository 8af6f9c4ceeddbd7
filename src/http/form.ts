import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { Errors } from '../errors.js'

/**
 * OAuth endpoints take application/x-www-form-urlencoded only (RFC 6749 §3.2, RFC 7662 §2.1).
 * No body, or JSON (the usual client mistake), is an invalid request; any other media type is
 * 415. Checked on the header alone, before any body is read (a callback hook: on the hot path,
 * no promise per request).
 */
export function requireFormBody (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const type = (request.headers['content-type'] ?? '').toLowerCase()
  if (type.startsWith('application/x-www-form-urlencoded')) return done()
  if (type === '' || /^application\/(.+\+)?json\b/.test(type)) return done(new Errors.FormBodyRequired())
  done(new Errors.UnsupportedMediaType(type.replace(/;.*$/, '')))
}
