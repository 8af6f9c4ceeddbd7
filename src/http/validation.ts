import AjvCompiler, { type BuildCompilerFromPool } from '@fastify/ajv-compiler'
import type { Ajv, SchemaObject } from 'ajv'

/** The keyword every string and number of a request is validated with (see storable()). */
const STORABLE = 'x-storable'

/**
 * Values PostgreSQL cannot store, refused at the edge with a 400 naming the field instead of a
 * database error: strings with a NUL character (text cannot hold one) or a lone UTF-16
 * surrogate (it would be stored as U+FFFD, unlike what the answer echoes); numbers that are not
 * finite (`?limit=1e400` — Ajv coerces it to Infinity and then skips its range checks); and
 * date-times JavaScript cannot represent or PostgreSQL cannot store (a leap second `…:60Z`,
 * year 0000).
 */
function storable (this: unknown, _schema: boolean, data: unknown, parentSchema?: SchemaObject): boolean {
  const validate = storable as typeof storable & { errors?: Array<{ keyword: string, message: string, params: object }> }
  let message: string | null = null
  if (typeof data === 'string') {
    if (data.includes('\u0000')) message = 'must not contain NUL characters'
    else if (!data.isWellFormed()) message = 'must be well-formed Unicode text (no lone surrogate)'
    else if (parentSchema?.format === 'date-time' && !isStorableDate(data)) message = 'must be a date-time between years 0001 and 9999, without leap seconds'
  } else if (typeof data === 'number' && !Number.isFinite(data)) {
    message = 'must be a finite number'
  }
  validate.errors = message === null ? [] : [{ keyword: STORABLE, message, params: {} }]
  return message === null
}

/** The start of an RFC 3339 date-time; anything else is left to the `date-time` format's own message. */
const DATE_TIME_SHAPE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}/

function isStorableDate (value: string): boolean {
  if (!DATE_TIME_SHAPE.test(value)) return true
  const time = Date.parse(value)
  if (!Number.isFinite(time)) return false
  const year = new Date(time).getUTCFullYear()
  return year >= 1 && year <= 9999
}

/** Ajv's `onCreate`: declares the keyword on each compiler. */
function addStorableKeyword (ajv: Ajv): void {
  ajv.addKeyword({ keyword: STORABLE, schemaType: 'boolean', errors: true, validate: storable })
}

const NESTED_SCHEMAS = ['items', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains', 'propertyNames']
const NESTED_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems']
const NESTED_MAPS = ['properties', 'patternProperties']

/**
 * A copy of a route's request schema where every string and number schema also carries the
 * `x-storable` keyword: one rule for every route, present and future, without touching the
 * schemas the OpenAPI document is built from.
 */
function withStorableValues (schema: unknown): unknown {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return schema
  const source = schema as Record<string, unknown>
  const copy: Record<string, unknown> = { ...source }
  const types = Array.isArray(source.type) ? source.type : [source.type]
  if (types.some((type) => type === 'string' || type === 'number' || type === 'integer')) copy[STORABLE] = true
  for (const key of NESTED_SCHEMAS) if (key in source) copy[key] = withStorableValues(source[key])
  for (const key of NESTED_LISTS) if (Array.isArray(source[key])) copy[key] = (source[key] as unknown[]).map(withStorableValues)
  for (const key of NESTED_MAPS) {
    const map = source[key]
    if (map !== null && typeof map === 'object') copy[key] = Object.fromEntries(Object.entries(map).map(([name, sub]) => [name, withStorableValues(sub)]))
  }
  return copy
}

/**
 * Fastify's validator compiler: query strings, params and headers arrive as text and are coerced
 * to their schema's types; JSON bodies are not (`"scopes": "read:tokens"` or `"expires_in": true`
 * is a 400, not a guess; form bodies are all strings already). Two compilers from
 * @fastify/ajv-compiler, one per policy, both with the storable-values rule.
 */
export const buildValidator: BuildCompilerFromPool = (externalSchemas, ajvOptions) => {
  const options = { ...ajvOptions, onCreate: addStorableKeyword }
  const lenient = AjvCompiler()(externalSchemas, options)
  const strict = AjvCompiler()(externalSchemas, { ...options, customOptions: { ...ajvOptions?.customOptions, coerceTypes: false } } as typeof ajvOptions)
  return (route) => {
    const { httpPart, schema } = route as { httpPart?: string, schema: unknown }
    return (httpPart === 'body' ? strict : lenient)({ ...route as object, schema: withStorableValues(schema) } as typeof route)
  }
}
