import argon2 from 'argon2'

export interface PasswordHashingOptions {
  memoryCost: number
  timeCost: number
}

/**
 * argon2id for low-entropy or long-lived secrets (passwords, client secrets). Deliberately
 * slow: never call it on a hot path; callers cache a successful verification by digest.
 */
export class PasswordHasher {
  readonly #options: PasswordHashingOptions
  #dummyHash: Promise<string> | undefined

  constructor (options: PasswordHashingOptions) {
    this.#options = options
  }

  hash (secret: string): Promise<string> {
    return argon2.hash(secret, { type: argon2.argon2id, memoryCost: this.#options.memoryCost, timeCost: this.#options.timeCost, parallelism: 1 })
  }

  async verify (hash: string | null | undefined, secret: string): Promise<boolean> {
    if (hash == null || hash === '') {
      // Same cost whether or not the account has a secret: no timing oracle for usernames.
      await this.#burn(secret)
      return false
    }
    try {
      return await argon2.verify(hash, secret)
    } catch {
      return false
    }
  }

  async #burn (secret: string): Promise<void> {
    this.#dummyHash ??= this.hash('tessera-dummy-secret-for-constant-work')
    await argon2.verify(await this.#dummyHash, secret).catch(() => false)
  }
}
