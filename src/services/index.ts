import type { MikroORM } from '@mikro-orm/postgresql'
import type { Config } from '../config.js'
import { ClientAuthenticator, CLIENT_LOOKUP_SQL, type ClientRow } from './client-auth.js'
import { PasswordHasher } from './passwords.js'
import { SigningKeyStore } from './signing-keys.js'
import { TokenCache } from './token-cache.js'
import { SecretDigester } from './token-format.js'
import { recordFromRow, TOKEN_LOOKUP_SQL, TokenResolver, type TokenRow } from './token-resolver.js'
import type { TokenIssuerDeps } from './tokens.js'

/** The domain services of one Tessera instance, wired once at start. No HTTP in here. */
export interface Services {
  config: Config
  orm: MikroORM
  hasher: PasswordHasher
  digester: SecretDigester
  cache: TokenCache
  resolver: TokenResolver
  clients: ClientAuthenticator
  issuer: TokenIssuerDeps
  keys: SigningKeyStore
}

export function createServices (config: Config, orm: MikroORM): Services {
  const hasher = new PasswordHasher({ memoryCost: config.ARGON2_MEMORY_COST, timeCost: config.ARGON2_TIME_COST })
  const digester = new SecretDigester(config.TOKEN_HMAC_KEY)
  const cache = new TokenCache({
    maxEntries: config.CACHE_MAX_ENTRIES,
    maxBytes: config.CACHE_MAX_BYTES,
    ttl: config.CACHE_TTL,
    negativeTtl: config.CACHE_NEGATIVE_TTL
  })
  const keys = new SigningKeyStore({
    fork: () => orm.em.fork(),
    secret: config.SIGNING_KEY_SECRET !== '' ? config.SIGNING_KEY_SECRET : config.TOKEN_HMAC_KEY,
    // Only client_credentials tokens are JWTs today; TOKEN_MAX_LIFETIME covers any other that may become one.
    retiredKeyLifetime: Math.max(config.CLIENT_CREDENTIALS_TOKEN_LIFETIME, config.TOKEN_MAX_LIFETIME)
  })
  const connection = orm.em.getConnection()
  const resolver = new TokenResolver({
    prefix: config.TOKEN_PREFIX,
    digester,
    cache,
    jwt: keys,
    async lookup (digest) {
      const rows = await connection.execute<TokenRow[]>(TOKEN_LOOKUP_SQL, [digest])
      return rows[0] !== undefined ? recordFromRow(rows[0]) : null
    }
  })
  const clients = new ClientAuthenticator({
    hasher,
    ttlSeconds: config.CLIENT_CREDENTIAL_CACHE_TTL,
    async lookup (clientId) {
      const rows = await connection.execute<ClientRow[]>(CLIENT_LOOKUP_SQL, [clientId])
      return rows[0] ?? null
    }
  })
  const issuer: TokenIssuerDeps = {
    scopes: config.scopes,
    digester,
    cache,
    prefix: config.TOKEN_PREFIX,
    limits: { defaultLifetime: config.TOKEN_DEFAULT_LIFETIME, maxLifetime: config.TOKEN_MAX_LIFETIME },
    signer: { issuer: config.publicUrl, sign: (typ, claims) => keys.sign(typ, claims) }
  }
  return { config, orm, hasher, digester, cache, resolver, clients, issuer, keys }
}
