/**
 * The peer: node-oidc-provider (OpenID Certified) configured for the same job — one
 * confidential client with the client_credentials grant, RFC 7662 introspection enabled, its
 * built-in in-memory adapter. The bench gets an access token from POST /token, then loads
 * POST /token/introspection with client_secret_basic, as it loads Tessera.
 *
 * The bench compiles it alone to dist/bench/ and runs it with plain `node` (bench/build.ts),
 * so it imports packages only.
 */
import { generateKeyPairSync } from 'node:crypto'
import Provider from 'oidc-provider'

const port = Number(process.env.PORT ?? 3200)
// The bench passes the credentials it will authenticate with (bench/scenarios.ts).
const clientId = process.env.BENCH_PEER_CLIENT_ID ?? 'bench-peer'
const clientSecret = process.env.BENCH_PEER_CLIENT_SECRET ?? 'bench-peer-secret-not-a-secret-0123456789'

// Its own signing key (ID tokens are never issued here), so it does not warn about development keys.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'bench' }

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read:tokens'
  }],
  scopes: ['read:tokens'],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['bench-cookie-key-not-a-secret'] },
  // Tessera's CLIENT_CREDENTIALS_TOKEN_LIFETIME default.
  ttl: { ClientCredentials: 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The token's own client asks: the default policy allows it; say so to silence its notice.
      allowedPolicy: async (_ctx, client, token) => client.clientId === token.clientId
    }
  }
})

const server = provider.listen(port, '127.0.0.1')

function close (): void {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.once('SIGTERM', close)
process.once('SIGINT', close)
