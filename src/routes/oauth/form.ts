import type { FastifyReply, FastifyRequest } from 'fastify'
import { Errors } from '../../errors.js'

/** OAuth endpoints take application/x-www-form-urlencoded only (RFC 6749 §3.2, RFC 7662 §2.1). */
export async function requireFormBody (request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  const type = request.headers['content-type'] ?? ''
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw Object.assign(new Errors.BadRequest('the request body must be application/x-www-form-urlencoded'), { oauthError: 'invalid_request' })
  }
}
