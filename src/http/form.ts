import type { FastifyReply, FastifyRequest } from 'fastify'
import { Errors } from '../errors.js'

/**
 * OAuth endpoints take application/x-www-form-urlencoded only (RFC 6749 §3.2, RFC 7662 §2.1).
 * No body, or JSON (the usual client mistake), is an invalid request; any other media type is
 * 415. Checked on the header alone, before any body is read.
 */
export async function requireFormBody (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  const type = (request.headers['content-type'] ?? '').toLowerCase()
  if (type.startsWith('application/x-www-form-urlencoded')) return
  if (type === '' || /^application\/(.+\+)?json\b/.test(type)) throw new Errors.FormBodyRequired()
  throw new Errors.UnsupportedMediaType(type.replace(/;.*$/, ''))
}
