import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Application } from '../../entities/application.js'
import { Errors } from '../../errors.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { ApplicationParams, ApplicationSecret, ApplicationViewList, CreateApplicationBody, UpdateApplicationBody } from '../../../schemas/admin.js'
import { PageQuery } from '../../../schemas/listing.js'
import { createApplication, deleteApplication, rotateClientSecret, updateApplication } from '../../services/applications.js'
import { pageLinks } from '../../services/pagination.js'
import { toApplicationView } from '../../views.js'

const security = [{ bearerAuth: [] }]

/** OAuth applications (clients): /api/v1/admin/applications. */
const adminApplications: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services, config } = fastify
  async function findOr404 (em: ReturnType<typeof fastify.orm.em.fork>, id: string): Promise<Application> {
    const application = await em.findOne(Application, id.toLowerCase())
    if (application === null) throw new Errors.ApplicationNotFound(id)
    return application
  }

  fastify.post('/api/v1/admin/applications', {
    schema: {
      tags: ['admin'],
      summary: 'Create an application; its client secret is in the answer once',
      security,
      body: CreateApplicationBody,
      response: { 201: { $ref: 'ApplicationWithSecret' }, ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    const { body } = request
    const created = await em.transactional(async (tx) => await createApplication(tx, {
      hasher: services.hasher,
      scopes: config.scopes,
      tokenPrefix: config.TOKEN_PREFIX
    }, {
      name: body.name,
      scopes: body.scopes,
      ...(body.confidential !== undefined ? { confidential: body.confidential } : {}),
      ...(body.redirect_uris !== undefined ? { redirectUris: body.redirect_uris } : {}),
      ...(body.introspection_audiences !== undefined ? { introspectionAudiences: body.introspection_audiences } : {}),
      ...(body.introspection_scopes !== undefined ? { introspectionScopes: body.introspection_scopes } : {}),
      ...(body.token_format !== undefined ? { tokenFormat: body.token_format } : {})
    }, request.principal!.actor))
    return reply.code(201).header('cache-control', 'no-store').header('pragma', 'no-cache')
      .send({ ...toApplicationView(created.application), client_secret: created.clientSecret })
  })

  fastify.get('/api/v1/admin/applications', {
    schema: {
      tags: ['admin'],
      summary: 'List applications (page/limit, X-Total-Count and Link)',
      security,
      querystring: PageQuery,
      response: { 200: ApplicationViewList, ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const { page = 1, limit = 20 } = request.query
    const [items, total] = await fastify.orm.em.fork().findAndCount(Application, {}, { orderBy: { createdAt: 'asc', id: 'asc' }, limit, offset: (page - 1) * limit })
    reply.header('x-total-count', String(total)).links(request, pageLinks(page, limit, total))
    return items.map(toApplicationView)
  })

  fastify.get('/api/v1/admin/applications/:id', {
    schema: {
      tags: ['admin'],
      summary: 'Show an application',
      security,
      params: ApplicationParams,
      response: { 200: { $ref: 'ApplicationView' }, ...problems(400, 401, 403, 404) }
    }
  }, async function (request) {
    return toApplicationView(await findOr404(fastify.orm.em.fork(), request.params.id))
  })

  fastify.patch('/api/v1/admin/applications/:id', {
    schema: {
      tags: ['admin'],
      summary: 'Change an application\'s name, scopes, redirect URIs, introspection audiences or token format',
      security,
      params: ApplicationParams,
      body: UpdateApplicationBody,
      response: { 200: { $ref: 'ApplicationView' }, ...problems(400, 401, 403, 404, 409) }
    }
  }, async function (request) {
    const em = fastify.orm.em.fork()
    const application = await em.transactional(async (tx) => {
      const found = await findOr404(tx, request.params.id)
      updateApplication(tx, config.scopes, found, request.body, request.principal!.actor)
      return found
    })
    // Scopes and introspection limits are part of what its verified credentials and its own
    // tokens grant: both are read afresh.
    await services.invalidation.application(application.id)
    return toApplicationView(application)
  })

  fastify.delete('/api/v1/admin/applications/:id', {
    schema: {
      tags: ['admin'],
      summary: 'Delete an application and revoke all its tokens',
      description: 'The built-in internal application cannot be deleted (409).',
      security,
      params: ApplicationParams,
      response: { 204: NoContent, ...problems(400, 401, 403, 404, 409) }
    }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    const id = await em.transactional(async (tx) => {
      const found = await findOr404(tx, request.params.id)
      deleteApplication(tx, found, request.principal!.actor)
      return found.id
    })
    await services.invalidation.application(id)
    return reply.code(204).send(null)
  })

  fastify.post('/api/v1/admin/applications/:id/secret', {
    schema: {
      tags: ['admin'],
      summary: 'Rotate the client secret: the old one stops working now; the new one is shown once',
      security,
      params: ApplicationParams,
      response: { 200: ApplicationSecret, ...problems(400, 401, 403, 404, 409) }
    }
  }, async function (request, reply) {
    const em = fastify.orm.em.fork()
    const { application, secret } = await em.transactional(async (tx) => {
      const found = await findOr404(tx, request.params.id)
      return { application: found, secret: await rotateClientSecret(tx, services.hasher, config.TOKEN_PREFIX, found, request.principal!.actor) }
    })
    await services.invalidation.client(application.id)
    return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send({ client_id: application.clientId, client_secret: secret })
  })
}

export default adminApplications
