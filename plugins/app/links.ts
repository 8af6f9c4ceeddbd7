import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Sets an RFC 8288 Link header whose URLs are absolute: the configured PUBLIC_URL, else
     * the request's own scheme and host (X-Forwarded-* honoured when TRUST_PROXY is set) when
     * they are well-formed, else the default public URL. Each relation keeps the request's
     * other query parameters that the route declares, and replaces the paging ones.
     */
    links: (request: FastifyRequest, relations: Record<string, Record<string, string>> | null, replace?: string[]) => FastifyReply
  }
}

const PAGING_PARAMETERS = ['max_id', 'since_id', 'min_id', 'limit', 'page']

/**
 * A host name or IPv4 address, or an IPv6 address in brackets, with an optional port: what a
 * Host header may hold, and nothing (`>`, `;`, `,`, spaces, quotes) that could close the URL
 * and add relations of the sender's choosing.
 */
const HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/

/** Characters a URI path may hold as they are (RFC 3986 §3.3), `%` of existing escapes included. */
const NOT_PATH = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/g

/** The query parameters a route's querystring schema declares (a TypeBox object). */
function declaredParameters (request: FastifyRequest): Set<string> {
  const properties = (request.routeOptions.schema?.querystring as { properties?: unknown } | undefined)?.properties
  return new Set(typeof properties === 'object' && properties !== null ? Object.keys(properties) : [])
}

export default fp(async function links (fastify) {
  const configured = fastify.config.PUBLIC_URL === '' ? null : fastify.config.publicUrl
  const fallback = fastify.config.publicUrl

  /** The origin of the links: never a value the client sent that is not a plain scheme and host. */
  function baseOf (request: FastifyRequest): string {
    if (configured !== null) return configured
    const { protocol, host } = request
    return (protocol === 'http' || protocol === 'https') && HOST.test(host) ? `${protocol}://${host}` : fallback
  }

  fastify.decorateReply('links', function (this: FastifyReply, request: FastifyRequest, relations: Record<string, Record<string, string>> | null, replace = PAGING_PARAMETERS) {
    if (relations === null) return this
    const base = baseOf(request)
    // Escaped again in case the HTTP parser let through a `>` or a space that would end the URL.
    const path = (request.url.split('?')[0] ?? '/').replace(NOT_PATH, (character) => encodeURIComponent(character))
    // Only the route's own filters travel on: anything else in the URL (a token in
    // `?access_token=`, say) would otherwise be repeated in every relation.
    const declared = declaredParameters(request)
    for (const name of replace) declared.delete(name)
    const sent = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '')
    const current = new URLSearchParams([...sent].filter(([name]) => declared.has(name)))
    const parts: string[] = []
    for (const [rel, params] of Object.entries(relations)) {
      const query = new URLSearchParams(current)
      for (const [key, value] of Object.entries(params)) query.set(key, value)
      parts.push(`<${base}${path}?${query.toString()}>; rel="${rel}"`)
    }
    return this.header('link', parts.join(', '))
  })
}, { name: 'links', dependencies: ['services'] })
