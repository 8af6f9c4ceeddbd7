import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Sets an RFC 8288 Link header whose URLs are absolute: the configured PUBLIC_URL, else
     * the request's own scheme and host (X-Forwarded-* honoured when TRUST_PROXY is set).
     * Each relation keeps the request's other query parameters and replaces the paging ones.
     */
    links: (request: FastifyRequest, relations: Record<string, Record<string, string>> | null, replace?: string[]) => FastifyReply
  }
}

const PAGING_PARAMETERS = ['max_id', 'since_id', 'min_id', 'limit', 'page']

export default fp(async function links (fastify) {
  const configured = fastify.config.PUBLIC_URL === '' ? null : fastify.config.publicUrl

  fastify.decorateReply('links', function (this: FastifyReply, request: FastifyRequest, relations: Record<string, Record<string, string>> | null, replace = PAGING_PARAMETERS) {
    if (relations === null) return this
    const base = configured ?? `${request.protocol}://${request.host}`
    const path = request.url.split('?')[0] ?? '/'
    const current = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '')
    for (const name of replace) current.delete(name)
    const parts: string[] = []
    for (const [rel, params] of Object.entries(relations)) {
      const query = new URLSearchParams(current)
      for (const [key, value] of Object.entries(params)) query.set(key, value)
      parts.push(`<${base}${path}?${query.toString()}>; rel="${rel}"`)
    }
    return this.header('link', parts.join(', '))
  })
}, { name: 'links', dependencies: ['services'] })
