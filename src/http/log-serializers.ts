import type { FastifyError, FastifyRequest } from 'fastify'
import pino from 'pino'
import { maskSecrets, maskSecretsDeep } from '../services/secret-mask.js'

/**
 * Query parameters whose value is a secret whatever it looks like (OAuth's and ours): their
 * values never reach a log line, even when they are not in a shape maskSecrets recognises.
 */
const SECRET_QUERY_PARAMETERS = new Set([
  'access_token', 'refresh_token', 'id_token', 'token', 'client_secret', 'password', 'secret',
  'code', 'assertion', 'client_assertion', 'csrf_token'
])

function parameterName (pair: string): string {
  const equals = pair.indexOf('=')
  const raw = (equals < 0 ? pair : pair.slice(0, equals)).replace(/\+/g, ' ')
  try {
    return decodeURIComponent(raw).toLowerCase()
  } catch {
    return raw.toLowerCase()
  }
}

/**
 * A request URL fit for a log line: recognisable secrets masked in the path and the query, and
 * the values of secret-bearing query parameters replaced (RFC 6750 §2.3 allows
 * `?access_token=`, and people paste tokens where they should not).
 */
export function maskUrl (url: string): string {
  const question = url.indexOf('?')
  if (question < 0) return maskSecrets(url)
  const query = url.slice(question + 1).split('&').map((pair) => {
    if (!SECRET_QUERY_PARAMETERS.has(parameterName(pair))) return pair
    const equals = pair.indexOf('=')
    return equals < 0 ? pair : `${pair.slice(0, equals)}=[redacted]`
  })
  return maskSecrets(`${url.slice(0, question)}?${query.join('&')}`)
}

function firstValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * pino serializers for the server's logger. `req` is Fastify's own with the URL masked (it logs
 * no headers and no body); `err` is pino's, masked, because an error's message may quote what a
 * request sent (a database error repeats the value it could not use).
 */
export const logSerializers = {
  req (request: FastifyRequest) {
    return {
      method: request.method,
      url: maskUrl(request.url),
      version: firstValue(request.headers['accept-version']),
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket?.remotePort
    }
  },
  err (error: FastifyError) {
    // pino's serialised error has its own prototype; a plain copy is what maskSecretsDeep walks.
    return maskSecretsDeep({ ...pino.stdSerializers.err(error) })
  }
}
