import t from 'tap'
import { BUILT_IN_SCOPES, effectiveScopes, ScopeCatalogue, UnknownScopesError } from '../../src/services/scopes.js'

t.test('an empty SCOPES setting gives exactly the built-in scopes', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('')
  t.strictSame(catalogue.names, ['admin', 'introspect', 'read:tokens', 'write:tokens'])
  t.strictSame(Object.keys(BUILT_IN_SCOPES).sort(), catalogue.names)
  t.strictSame(catalogue.describe().map(({ name }) => name), catalogue.names)
  t.equal(catalogue.describe().find(({ name }) => name === 'admin')?.description, BUILT_IN_SCOPES.admin)
})

t.test('configured scopes join the built-ins, separated by spaces or commas', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration(' read:repository,write:wiki  deploy ,, ')
  t.strictSame(catalogue.names, [
    'admin', 'deploy', 'introspect', 'read:repository', 'read:tokens', 'read:wiki', 'write:tokens', 'write:wiki'
  ])
  t.strictSame(catalogue.describe().find(({ name }) => name === 'deploy'), { name: 'deploy', description: 'Deployment scope deploy' })
  t.equal(catalogue.has('deploy'), true)
  t.equal(catalogue.has('write:repository'), false)
})

t.test('a configured write:X brings read:X into the catalogue', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('write:repository write:a.b:c-d')
  t.equal(catalogue.has('read:repository'), true)
  t.equal(catalogue.has('read:a.b:c-d'), true)
  t.strictSame(catalogue.validate(['read:repository']), ['read:repository'])
})

t.test('configuring a scope twice, or a built-in again, lists it once', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('deploy deploy admin read:repository write:repository')
  t.strictSame(catalogue.names, ['admin', 'deploy', 'introspect', 'read:repository', 'read:tokens', 'write:repository', 'write:tokens'])
  t.equal(catalogue.describe().find(({ name }) => name === 'admin')?.description, BUILT_IN_SCOPES.admin, 'a built-in keeps its description')
})

t.test('invalid configured scope names are refused, naming the scope', async (t) => {
  const long = `a${'b'.repeat(64)}`
  const cases: Array<[setting: string, name: string]> = [
    ['Read:repo', 'Read:repo'],
    ['read:', 'read:'],
    [':repo', ':repo'],
    ['1deploy', '1deploy'],
    ['read::repo', 'read::repo'],
    ['deploy!', 'deploy!'],
    ['read:repo write:Repo', 'write:Repo'],
    [long, long]
  ]
  for (const [setting, name] of cases) {
    t.throws(() => ScopeCatalogue.fromConfiguration(setting), { message: `has an invalid scope name "${name}" (lower-case letters, digits, "_", ".", "-", separated by ":")` }, setting)
  }
  t.doesNotThrow(() => ScopeCatalogue.fromConfiguration(`a${'b'.repeat(63)}`), 'a 64-character name is allowed')
})

t.test('validate returns the requested scopes de-duplicated, in request order', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('read:repository write:repository')
  t.strictSame(catalogue.validate(['write:repository', 'introspect', 'write:repository', 'admin', 'introspect']), ['write:repository', 'introspect', 'admin'])
  t.strictSame(catalogue.validate([]), [])
})

t.test('unknown scopes are refused with an error that lists the valid ones', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('write:repository')
  const error = t.throws(() => catalogue.validate(['read:tokens', 'delete:everything', 'root', 'root'])) as UnknownScopesError
  t.type(error, UnknownScopesError)
  t.strictSame(error.unknown, ['delete:everything', 'root'])
  t.strictSame(error.valid, ['admin', 'introspect', 'read:repository', 'read:tokens', 'write:repository', 'write:tokens'])
  t.equal(error.message, 'unknown scopes delete:everything, root; valid scopes are: admin introspect read:repository read:tokens write:repository write:tokens')
})

t.test('a single unknown scope is named in the singular', async (t) => {
  const catalogue = ScopeCatalogue.fromConfiguration('')
  t.throws(() => catalogue.validate(['write:repository']), {
    constructor: UnknownScopesError,
    message: 'unknown scope write:repository; valid scopes are: admin introspect read:tokens write:tokens'
  })
})

t.test('effective scopes add read:X for every write:X, once', async (t) => {
  t.strictSame(effectiveScopes(['write:tokens']), ['write:tokens', 'read:tokens'])
  t.strictSame(effectiveScopes(['write:repository', 'introspect']), ['write:repository', 'introspect', 'read:repository'])
  t.strictSame(effectiveScopes(['read:tokens', 'write:tokens']), ['read:tokens', 'write:tokens'])
  t.strictSame(effectiveScopes(['write:a:b', 'write:a:b']), ['write:a:b', 'read:a:b'])
  t.strictSame(effectiveScopes(['admin', 'read:repository']), ['admin', 'read:repository'], 'read does not imply write, nor admin anything')
  t.strictSame(effectiveScopes([]), [])
})
