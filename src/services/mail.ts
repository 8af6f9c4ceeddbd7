import nodemailer, { type Transporter } from 'nodemailer'
import { expirationHeader } from '../http/expiration.js'
import type { ExpiryNotice } from './expiry-notices.js'

export interface MailerOptions {
  /** SMTP_URL: smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465. */
  url: string
  from: string
  /** Where owners manage their tokens (the web page under PUBLIC_URL). */
  tokensPage: string
}

/**
 * Mail to token owners (SMTP_URL, with nodemailer): expiry notices and leak reports. Best effort:
 * the event is the record (webhooks deliver it at least once); a mail that cannot be sent is
 * logged by the caller, not retried.
 */
export class Mailer {
  readonly #transport: Transporter
  readonly #options: MailerOptions

  constructor (options: MailerOptions) {
    this.#options = options
    this.#transport = nodemailer.createTransport({ url: options.url, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 })
  }

  async #send (to: string, subject: string, text: string): Promise<void> {
    await this.#transport.sendMail({ from: this.#options.from, to, subject, text })
  }

  /** One mail per notice whose owner has an address. */
  async expiryNotices (notices: ExpiryNotice[]): Promise<void> {
    for (const notice of notices) {
      if (notice.email === null) continue
      const when = expirationHeader(notice.expiresAt.getTime())
      const subject = notice.days === 0
        ? `Your Tessera token "${notice.tokenName}" has expired`
        : `Your Tessera token "${notice.tokenName}" expires in ${notice.days === 1 ? 'a day' : `${notice.days} days`}`
      await this.#send(notice.email, subject, [
        `Hello ${notice.owner},`,
        '',
        notice.days === 0
          ? `your personal access token "${notice.tokenName}" expired at ${when}. Whatever still uses it now gets 401.`
          : `your personal access token "${notice.tokenName}" expires at ${when}. Whatever uses it will get 401 from then on: rotate it, or create a new one, before that.`,
        '',
        `Your tokens: ${this.#options.tokensPage}`
      ].join('\n'))
    }
  }

  /** A token found in public by GitHub, already revoked. */
  async leaked (to: string, owner: string, tokenName: string, url: string, revoked: boolean): Promise<void> {
    await this.#send(to, `Your Tessera token "${tokenName}" was found in public${revoked ? ' and revoked' : ''}`, [
      `Hello ${owner},`,
      '',
      `GitHub secret scanning found your personal access token "${tokenName}" at ${url}.`,
      revoked ? 'It has been revoked: whatever used it now gets 401. Create a new one, and remove the old one from where it was published.' : 'It was no longer valid.',
      '',
      `Your tokens: ${this.#options.tokensPage}`
    ].join('\n'))
  }

  close (): void {
    this.#transport.close()
  }
}
