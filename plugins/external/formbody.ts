import fp from 'fastify-plugin'
import formbody from '@fastify/formbody'

/** application/x-www-form-urlencoded, as RFC 6749 and RFC 7662 require for the OAuth endpoints. */
export default fp(async function formBodyParser (fastify) {
  await fastify.register(formbody)
}, { name: 'formbody' })
