import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { User } from '../../entities/user.js'
import { NoContent, problems } from '../../../schemas/common.js'
import { CreateUserBody, UpdateUserBody, UserListQuery, UserViewList } from '../../../schemas/admin.js'
import { UsernameParams } from '../../../schemas/tokens.js'
import { pageLinks } from '../../services/pagination.js'
import { deleteUser, updateUser, userFilterQuery } from '../../services/user-admin.js'
import { createUser, findUserOrFail } from '../../services/users.js'
import { toUserView } from '../../views.js'

const security = [{ bearerAuth: [] }]

/** Users, for administrators and provisioning systems: /api/v1/admin/users. */
const adminUsers: FastifyPluginAsyncTypebox = async function (fastify) {
  const { services } = fastify

  fastify.post('/api/v1/admin/users', {
    schema: {
      tags: ['admin'],
      summary: 'Create a user (with a password, or a password-less bot account)',
      security,
      body: CreateUserBody,
      response: { 201: { $ref: 'UserView' }, ...problems(400, 401, 403, 409, 429) }
    }
  }, async function (request, reply) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const user = await em.transactional(async (tx) => await createUser(tx, services.hasher, {
      username: request.body.username,
      email: request.body.email ?? null,
      password: request.body.password ?? null,
      admin: request.body.admin ?? false
    }, principal.actor))
    return reply.code(201).send(toUserView(user))
  })

  fastify.get('/api/v1/admin/users', {
    schema: {
      tags: ['admin'],
      summary: 'List users (page/limit, X-Total-Count and Link)',
      security,
      querystring: UserListQuery,
      response: { 200: UserViewList, ...problems(400, 401, 403) }
    }
  }, async function (request, reply) {
    const { page = 1, limit = 20, ...filters } = request.query
    const [users, total] = await fastify.orm.em.fork().findAndCount(User, userFilterQuery(filters), {
      orderBy: { createdAt: 'asc', id: 'asc' },
      limit,
      offset: (page - 1) * limit
    })
    reply.header('x-total-count', String(total)).links(request, pageLinks(page, limit, total))
    return users.map(toUserView)
  })

  fastify.get('/api/v1/admin/users/:username', {
    schema: {
      tags: ['admin'],
      summary: 'Show a user',
      security,
      params: UsernameParams,
      response: { 200: { $ref: 'UserView' }, ...problems(400, 401, 403, 404) }
    }
  }, async function (request) {
    return toUserView(await findUserOrFail(fastify.orm.em.fork(), request.params.username))
  })

  fastify.patch('/api/v1/admin/users/:username', {
    schema: {
      tags: ['admin'],
      summary: 'Suspend or unsuspend, grant or remove admin, set or remove the password, set the email',
      description: 'Suspension makes all the user\'s tokens inactive at once, on this and every path. The last active administrator cannot be demoted or suspended (409).',
      security,
      params: UsernameParams,
      body: UpdateUserBody,
      response: { 200: { $ref: 'UserView' }, ...problems(400, 401, 403, 404, 409) }
    }
  }, async function (request) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const { user, ownerAccessChanged } = await em.transactional(async (tx) => {
      const target = await findUserOrFail(tx, request.params.username)
      const result = await updateUser(tx, services.hasher, target, request.body, principal.actor)
      return { user: target, ...result }
    })
    if (ownerAccessChanged) await services.invalidation.user(user.id)
    return toUserView(user)
  })

  fastify.delete('/api/v1/admin/users/:username', {
    schema: {
      tags: ['admin'],
      summary: 'Delete a user and all their tokens',
      security,
      params: UsernameParams,
      response: { 204: NoContent, ...problems(400, 401, 403, 404, 409) }
    }
  }, async function (request, reply) {
    const principal = request.principal!
    const em = fastify.orm.em.fork()
    const id = await em.transactional(async (tx) => {
      const target = await findUserOrFail(tx, request.params.username)
      await deleteUser(tx, target, principal.actor)
      return target.id
    })
    await services.invalidation.user(id)
    return reply.code(204).send(null)
  })
}

export default adminUsers
