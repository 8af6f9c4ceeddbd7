import { Migration } from '@mikro-orm/migrations'

export class Migration20261123154634 extends Migration {
  override name = 'Migration20261123154634'

  override up (): void | Promise<void> {
    this.addSql('create table "signing_keys" ("kid" varchar(64) not null, "algorithm" text not null, "public_jwk" jsonb not null, "private_key" text not null, "created_at" timestamptz not null, "retired_at" timestamptz null, primary key ("kid"));')
    this.addSql('alter table "signing_keys" add constraint "signing_keys_algorithm_check" check ("algorithm" in (\'ES256\'));')
  }

  override down (): void | Promise<void> {
    this.addSql('drop table if exists "signing_keys" cascade;')
  }
}
