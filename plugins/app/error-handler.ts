import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type { ChallengeError } from '../../src/errors.js'
import type { OAuthErrorBody, ProblemBody } from '../../schemas/common.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors on this route use RFC 6749 §5.2 shapes instead of problem+json. */
    oauthErrors?: boolean
  }
}

/** Codes of our own 5xx errors whose message is written for the client and safe to show. */
const SAFE_SERVER_ERRORS = new Set(['TESSERA_INTERNAL_APP_MISSING', 'TESSERA_DATABASE_UNAVAILABLE'])

/**
 * Socket and DNS failures, and the PostgreSQL SQLSTATEs a server answers when it cannot take
 * a connection: class 08 (connection exception), 53300 (too many connections), 57P01–57P03
 * (shutting down, crashed, starting up) and 3D000 (the configured database does not exist).
 * A statement that outlived DATABASE_TIMEOUT_MS ("Query read timeout" from pg) counts too.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  '08000', '08001', '08003', '08004', '08006', '53300', '57P01', '57P02', '57P03', '3D000'
])

/** Errors that mean the database could not be reached (pg, MikroORM, sockets). */
export function isDatabaseUnavailable (error: unknown): boolean {
  const err = error as { name?: string, code?: string, message?: string }
  return err.name === 'ConnectionException' ||
    UNAVAILABLE_CODES.has(err.code ?? '') ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout/i.test(err.message ?? '')
}

interface Normalised {
  status: number
  code: string
  detail: string
  errors?: Array<{ path: string, message: string }>
}

function normalise (error: FastifyError, request: FastifyRequest): Normalised {
  if (error.validation !== undefined) {
    const errors = error.validation.map((issue) => ({
      path: `${error.validationContext ?? 'request'}${issue.instancePath}`,
      message: `${issue.message ?? 'is invalid'}${describeParams(issue.params)}`
    }))
    return { status: 400, code: 'FST_ERR_VALIDATION', detail: errors.map((e) => `${e.path} ${e.message}`).join('; '), errors }
  }
  if (isDatabaseUnavailable(error)) {
    request.log.error({ err: error }, 'database unavailable')
    return { status: 503, code: 'TESSERA_DATABASE_UNAVAILABLE', detail: 'the database is unavailable; try again shortly' }
  }
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (status >= 500 && !SAFE_SERVER_ERRORS.has(error.code)) {
    request.log.error({ err: error }, 'request failed')
    return { status, code: 'TESSERA_INTERNAL', detail: 'an unexpected error occurred; it has been logged' }
  }
  return { status, code: error.code ?? 'TESSERA_ERROR', detail: error.message }
}

function describeParams (params: Record<string, unknown> | undefined): string {
  if (params === undefined) return ''
  if (typeof params.additionalProperty === 'string') return ` (${params.additionalProperty})`
  if (Array.isArray(params.allowedValues)) return ` (${params.allowedValues.join(', ')})`
  return ''
}

/** RFC 6749 §5.2 / RFC 6750 §3 code for an error on an OAuth route. */
function oauthCode (status: number, code: string): string {
  if (code === 'TESSERA_RATE_LIMITED') return 'rate_limited'
  if (status === 401) return 'invalid_client'
  if (status === 403) return 'insufficient_scope'
  if (status === 503) return 'temporarily_unavailable'
  if (status >= 500) return 'server_error'
  return 'invalid_request'
}

/**
 * The one error handler: RFC 9457 problem+json on the REST API, RFC 6749 errors on OAuth
 * routes. 4xx name the problem; 5xx are logged and answered without detail.
 */
export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(function handleError (error: FastifyError & ChallengeError & { oauthError?: string }, request: FastifyRequest, reply: FastifyReply) {
    const problem = normalise(error, request)
    if (problem.status < 500) request.log.info({ code: problem.code, status: problem.status }, problem.detail)
    if (error.challenge !== undefined) reply.header('www-authenticate', error.challenge)
    reply.code(problem.status)
    if (request.routeOptions.config.oauthErrors === true) {
      const body: OAuthErrorBody = { error: error.oauthError ?? oauthCode(problem.status, problem.code), error_description: problem.detail }
      return reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body)
    }
    const body: ProblemBody = {
      type: 'about:blank',
      title: STATUS_CODES[problem.status] ?? 'Error',
      status: problem.status,
      detail: problem.detail,
      code: problem.code,
      instance: request.id,
      ...(problem.errors !== undefined ? { errors: problem.errors } : {})
    }
    return reply.type('application/problem+json; charset=utf-8').send(body)
  })

  fastify.setNotFoundHandler({
    preHandler: fastify.rateLimit({ max: 60, timeWindow: 60_000 })
  }, function notFound (request, reply) {
    const body: ProblemBody = {
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: `no route ${request.method} ${request.url.split('?')[0]}`,
      code: 'TESSERA_ROUTE_NOT_FOUND',
      instance: request.id
    }
    return reply.code(404).type('application/problem+json; charset=utf-8').send(body)
  })
}, { name: 'error-handler', dependencies: ['rate-limit'] })
