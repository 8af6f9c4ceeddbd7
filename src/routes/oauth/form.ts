import { errorCodes, type FastifyReply, type FastifyRequest } from 'fastify'
import { Errors } from '../../errors.js'

/**
 * OAuth endpoints take application/x-www-form-urlencoded only (RFC 6749 §3.2, RFC 7662 §2.1).
 * No body, or JSON (the usual client mistake), is an invalid request; any other media type is
 * 415, as Fastify answers for types it has no parser for (text/plain has one, hence the check).
 */
export async function requireFormBody (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  const type = (request.headers['content-type'] ?? '').toLowerCase()
  if (type.startsWith('application/x-www-form-urlencoded')) return
  if (type === '' || /^application\/(.+\+)?json\b/.test(type)) {
    throw Object.assign(new Errors.BadRequest('the request body must be application/x-www-form-urlencoded'), { oauthError: 'invalid_request' })
  }
  throw Object.assign(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(`${type.replace(/;.*$/, '')}; use application/x-www-form-urlencoded`), { oauthError: 'invalid_request' })
}
