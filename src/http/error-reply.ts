import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { OAuthErrorBody, ProblemBody } from '../../schemas/common.js'
import { Errors, type TesseraError } from '../errors.js'
import { maskSecretsDeep } from '../services/secret-mask.js'
import { formatChallenge } from './challenge.js'
import { lingerBeforeClosing } from './linger.js'
import { JSON_TYPE } from './principal.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors on this route use RFC 6749 §5.2 / RFC 6750 §3 shapes instead of problem+json (see oauthErrorFrame). */
    oauthErrors?: boolean
  }
}

/**
 * An `onRoute` hook for a folder of OAuth routes (and the gateway's): their errors are RFC 6749
 * §5.2 JSON. One hook per folder instead of a flag on every route.
 */
export function oauthErrorFrame (route: RouteOptions): void {
  route.config = { ...route.config, oauthErrors: true }
}

/** Paths whose framework-level errors (no route matched yet) are answered as OAuth errors. */
const OAUTH_PATH = /^\/(oauth\/|auth\/verify(\/|\?|$)|\.well-known\/)/

/** Whether `request`'s errors are RFC 6749 JSON: its route says so, or (no route) its path is an OAuth one. */
function usesOAuthErrors (request: FastifyRequest): boolean {
  const config = request.routeOptions.config as { oauthErrors?: boolean } | undefined
  if (config?.oauthErrors === true) return true
  return request.routeOptions.url === undefined && OAUTH_PATH.test(request.url)
}

/**
 * Socket and DNS failures, and the PostgreSQL SQLSTATEs a server answers when it cannot take
 * a connection: class 08 (connection exception), 53300 (too many connections), 57P01–57P03
 * (shutting down, crashed, starting up) and 3D000 (the configured database does not exist).
 * A statement that outlived DATABASE_TIMEOUT_MS counts too, whichever side gave up: the client
 * ("Query read timeout" from pg, after which the connection is dropped and what was queued on it
 * fails as "not queryable"), or the server (57014, statement_timeout; 25P03,
 * idle_in_transaction_session_timeout).
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  '08000', '08001', '08003', '08004', '08006', '53300', '57P01', '57P02', '57P03', '3D000', '57014', '25P03'
])

/** Errors that mean the database could not be reached (pg, MikroORM, sockets). */
export function isDatabaseUnavailable (error: unknown): boolean {
  const err = error as { name?: string, code?: string, message?: string }
  return err.name === 'ConnectionException' ||
    UNAVAILABLE_CODES.has(err.code ?? '') ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|is not queryable/i.test(err.message ?? '')
}

type AnyError = FastifyError & Partial<TesseraError>

interface Normalised {
  status: number
  code: string
  detail: string
  oauthError: string
  errors?: Array<{ path: string, message: string }>
  /** Seconds after which a retry may succeed (a 429, a 503): the Retry-After header. */
  retryAfter?: number
}

const GENERIC_DETAIL = 'an unexpected error occurred; it has been logged'

/** Fastify's own errors (body parsing, media types) carry no OAuth code: they are malformed requests. */
function fallbackOAuthCode (status: number): string {
  if (status === 503) return 'temporarily_unavailable'
  if (status >= 500) return 'server_error'
  return 'invalid_request'
}

function normalise (error: AnyError, request: FastifyRequest): Normalised {
  if (error.validation !== undefined) {
    const errors = error.validation.map((issue) => ({
      path: `${error.validationContext ?? 'request'}${issue.instancePath}`,
      message: `${issue.message ?? 'is invalid'}${describeParams(issue.params)}`
    }))
    return { status: 400, code: 'FST_ERR_VALIDATION', oauthError: 'invalid_request', detail: errors.map((e) => `${e.path} ${e.message}`).join('; '), errors }
  }
  if (isDatabaseUnavailable(error)) {
    request.log.error({ err: error }, 'database unavailable')
    const unavailable = new Errors.DatabaseUnavailable()
    return { status: 503, code: unavailable.code, oauthError: 'temporarily_unavailable', detail: unavailable.message, retryAfter: unavailable.retryAfter }
  }
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (status >= 500 && error.exposed !== true) {
    request.log.error({ err: error }, 'request failed')
    return { status, code: 'TESSERA_INTERNAL', oauthError: fallbackOAuthCode(status), detail: GENERIC_DETAIL }
  }
  return { status, code: error.code ?? 'TESSERA_ERROR', oauthError: error.oauthError ?? fallbackOAuthCode(status), detail: error.message, retryAfter: error.retryAfter }
}

function describeParams (params: Record<string, unknown> | undefined): string {
  if (params === undefined) return ''
  if (typeof params.additionalProperty === 'string') return ` (${params.additionalProperty})`
  if (Array.isArray(params.allowedValues)) return ` (${params.allowedValues.join(', ')})`
  return ''
}

/**
 * Writes an error in its route family's one shape: RFC 9457 problem+json on the REST API,
 * RFC 6749 §5.2 JSON on OAuth routes; with the challenge the error carries. 4xx name the problem;
 * 5xx are logged and answered without detail. A request whose body was refused before it was all
 * read (413) is answered, then read to its end before the connection closes, so a client still
 * sending reads the answer instead of a reset.
 */
export function sendError (error: AnyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // Details quote what the request sent (a path, a token reference, a field name): a secret sent
  // in the wrong place is masked here, once, for the answer and the log line alike.
  const problem = maskSecretsDeep(normalise(error, request))
  if (problem.status < 500) request.log.info({ code: problem.code, status: problem.status }, problem.detail)
  if (error.challenge !== undefined) reply.header('www-authenticate', formatChallenge(error.challenge))
  // A 429 or a 503 that knows when a retry may succeed says so (RFC 9110 §10.2.3).
  if (problem.retryAfter !== undefined) reply.header('retry-after', String(problem.retryAfter))
  if (!request.raw.complete) lingerBeforeClosing(request.raw.socket)
  reply.code(problem.status)
  if (usesOAuthErrors(request)) {
    const body: OAuthErrorBody = { error: problem.oauthError, error_description: problem.detail }
    return reply.header('cache-control', 'no-store').type(JSON_TYPE).send(body)
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
}

/**
 * Fastify's `frameworkErrors`: a URL that does not decode, or a path parameter past
 * maxParamLength, found before any route (so no hook ran). Same shapes as every other error,
 * and the X-Request-Id the request-id plugin would have echoed.
 */
export function frameworkErrors (maxParamLength: number) {
  return function answerFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    reply.header('x-request-id', request.id)
    const replacement = error.code === 'FST_ERR_BAD_URL'
      ? new Errors.BadUrl()
      : error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new Errors.PathParameterTooLong(maxParamLength) : error
    sendError(replacement as AnyError, request, reply)
  }
}
