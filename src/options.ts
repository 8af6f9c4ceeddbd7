import { randomUUID } from 'node:crypto'
import type { FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { trustProxyOption } from './http/address.js'
import { frameworkErrors } from './http/error-reply.js'
import { logSerializers } from './http/log-serializers.js'
import { buildValidator } from './http/validation.js'
import { lazyChildLogger } from './request-logger.js'

/**
 * Never logged: credentials in headers, and any body or object field that could hold a
 * secret. Fastify's default serializers log neither headers nor bodies; this is the second lock.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'password',
  'token',
  'secret',
  'client_secret',
  'access_token',
  '*.password',
  '*.token',
  '*.sha1',
  '*.secret',
  '*.client_secret',
  '*.access_token',
  '*.authorization'
]

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

/** Longest path parameter (a token id or name, a username): longer is a 414 before any route runs. */
const MAX_PARAM_LENGTH = 200

/**
 * Fastify options shared by server.ts and the tests. A test's logger options (a level, a stream)
 * are laid over the server's, so its logs go through the same redaction and masking serializers.
 */
export function serverOptions (config: Config, logger: FastifyServerOptions['logger'] = undefined): FastifyServerOptions {
  return {
    logger: typeof logger === 'boolean'
      ? logger
      : {
          level: config.LOG_LEVEL,
          redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
          serializers: logSerializers,
          ...logger
        },
    // Each request's child logger is made only if the request logs something (src/request-logger.ts).
    childLoggerFactory: lazyChildLogger,
    bodyLimit: config.BODY_LIMIT,
    trustProxy: trustProxyOption(config.TRUST_PROXY),
    // Accept a sane incoming X-Request-Id (from a gateway) so logs correlate; otherwise make one.
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id']
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID()
    },
    return503OnClosing: true,
    ajv: {
      customOptions: {
        coerceTypes: 'array',
        removeAdditional: false,
        allErrors: true
      }
    },
    schemaController: { compilersFactory: { buildValidator } },
    // A URL that does not decode, or an over-long path parameter, answered in the API's own shapes.
    frameworkErrors: frameworkErrors(MAX_PARAM_LENGTH),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH }
  }
}
