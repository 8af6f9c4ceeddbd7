import type { FastifyRequest } from 'fastify'
import type { Actor } from '../services/audit.js'

/** Who does something through this request: a user or client, with the request's address and user agent. */
export function actorFromRequest (request: FastifyRequest, id: string | null, label: string): Actor {
  const userAgent = request.headers['user-agent']
  return { id, label, ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent : null }
}
