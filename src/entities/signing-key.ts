import type { JsonWebKey } from 'node:crypto'
import { defineEntity, p } from '@mikro-orm/core'

const SIGNING_ALGORITHMS = ['ES256'] as const

/**
 * A key pair the service signs JWTs with (access tokens, RFC 9701 introspection answers). The
 * newest key without `retired_at` signs; retired keys stay published in the JWKS until every
 * token they signed has expired.
 */
export const SigningKeySchema = defineEntity({
  name: 'SigningKey',
  tableName: 'signing_keys',
  properties: {
    // RFC 7638 thumbprint of the public key: stable, and the same on every replica.
    kid: p.string().length(64).primary(),
    algorithm: p.enum(SIGNING_ALGORITHMS),
    publicJwk: p.json<JsonWebKey>(),
    // PKCS#8 PEM sealed with AES-256-GCM (`aes-256-gcm:…`), or `plain:…` when no secret is configured.
    privateKey: p.text().hidden(),
    createdAt: p.datetime().onCreate(() => new Date()),
    retiredAt: p.datetime().nullable()
  }
})

export class SigningKey extends SigningKeySchema.class {}

SigningKeySchema.setClass(SigningKey)
