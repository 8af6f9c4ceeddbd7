import { createHmac } from 'node:crypto'
import { ALPHABET, BODY_LENGTH, isWellFormedToken, SecretDigester, tokenFromBody } from '../src/services/token-format.js'

/**
 * The bench's tokens are derived from their index, so the seeder and the load generator agree
 * on token N without storing a million strings anywhere. They have Tessera's exact format
 * (`<prefix>_<32 base62><6-character CRC32 checksum>`, src/services/token-format.ts) and are
 * stored under the same keyed digest Tessera computes, so Tessera treats them as its own.
 */
export const BENCH_TOKEN_PREFIX = 'tsr'

/** Fixed for every process of a run: the seeder, Tessera, the CLI and the reference server. Not a secret. */
export const BENCH_HMAC_KEY = 'tessera-bench-hmac-key-not-a-secret-0123456789'

const BODY_SEED = 'tessera-bench-token-body'

/** Token number `index`: the same string in every process, for the same index. */
export function benchToken (index: number): string {
  // 32 pseudo-random bytes per index; the modulo bias is irrelevant here (these are not secrets).
  const bytes = createHmac('sha256', BODY_SEED).update(String(index)).digest()
  let body = ''
  for (let i = 0; i < BODY_LENGTH; i++) body += ALPHABET[(bytes[i] ?? 0) % 62]
  return tokenFromBody(BENCH_TOKEN_PREFIX, body)
}

const digester = new SecretDigester(BENCH_HMAC_KEY)

/** The value Tessera stores and looks up for a token (HMAC-SHA256 under BENCH_HMAC_KEY, hex). */
export function benchDigest (token: string): string {
  return digester.digest(token)
}

/**
 * Fails loudly if the token format drifted from Tessera's: a bench whose tokens Tessera refuses
 * before any lookup would measure the wrong path.
 */
export function assertTokenFormat (): void {
  for (const index of [0, 1, 2, 999_999]) {
    const token = benchToken(index)
    if (!isWellFormedToken(token, BENCH_TOKEN_PREFIX)) {
      throw new Error(`bench token ${index} (${token}) is not well formed for Tessera: update bench/tokens.ts to match src/services/token-format.ts`)
    }
  }
}
