import { Migration } from '@mikro-orm/migrations'

/** Which expiry notice a token last had (TOKEN_EXPIRY_NOTICE_DAYS): each is sent once. */
export class Migration20261206153128 extends Migration {
  override name = 'Migration20261206153128'

  override up (): void | Promise<void> {
    this.addSql('alter table "access_tokens" add column "expiry_notice_days" int null;')
  }

  override down (): void | Promise<void> {
    this.addSql('alter table "access_tokens" drop column "expiry_notice_days";')
  }
}
