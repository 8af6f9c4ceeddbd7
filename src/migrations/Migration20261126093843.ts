import { Migration } from '@mikro-orm/migrations'

/** Sessions of the self-service web page (/settings/tokens), keyed by the digest of the cookie's secret. */
export class Migration20261126093843 extends Migration {
  override name = 'Migration20261126093843'

  override up (): void | Promise<void> {
    this.addSql('create table "web_sessions" ("id" uuid not null, "digest" varchar(64) not null, "user_id" uuid not null, "created_at" timestamptz not null, "last_seen_at" timestamptz not null, "expires_at" timestamptz not null, "ip" varchar(45) null, "user_agent" varchar(300) null, primary key ("id"));')
    this.addSql('alter table "web_sessions" add constraint "web_sessions_digest_unique" unique ("digest");')
    this.addSql('create index "web_sessions_user_id_index" on "web_sessions" ("user_id");')
    this.addSql('create index "web_sessions_expires_at_index" on "web_sessions" ("expires_at");')

    this.addSql('alter table "web_sessions" add constraint "web_sessions_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;')
  }

  override down (): void | Promise<void> {
    this.addSql('drop table if exists "web_sessions" cascade;')
  }
}
