import { Migration } from '@mikro-orm/migrations'

/** Events (the outbox), webhook endpoints and their deliveries (issue 15). */
export class Migration20261206151656 extends Migration {
  override name = 'Migration20261206151656'

  override up (): void | Promise<void> {
    this.addSql('create table "events" ("id" uuid not null, "created_at" timestamptz not null, "type" varchar(50) not null, "data" jsonb not null, "dispatched_at" timestamptz null, primary key ("id"));')
    this.addSql('create index "events_dispatched_at_index" on "events" ("dispatched_at");')

    this.addSql('create table "webhook_endpoints" ("id" uuid not null, "created_at" timestamptz not null, "url" varchar(2048) not null, "description" varchar(200) null, "events" text[] not null, "secret" text not null, "enabled" boolean not null, primary key ("id"));')

    this.addSql('create table "webhook_deliveries" ("id" uuid not null, "created_at" timestamptz not null, "endpoint_id" uuid not null, "event_id" uuid not null, "status" text not null, "attempts" int not null, "next_attempt_at" timestamptz not null, "last_attempt_at" timestamptz null, "last_status" int null, "last_error" varchar(500) null, primary key ("id"));')
    this.addSql('create index "webhook_deliveries_endpoint_id_index" on "webhook_deliveries" ("endpoint_id");')
    this.addSql('create index "webhook_deliveries_event_id_index" on "webhook_deliveries" ("event_id");')
    this.addSql('create index "webhook_deliveries_status_next_attempt_at_index" on "webhook_deliveries" ("status", "next_attempt_at");')

    this.addSql('alter table "webhook_deliveries" add constraint "webhook_deliveries_endpoint_id_foreign" foreign key ("endpoint_id") references "webhook_endpoints" ("id") on delete cascade;')
    this.addSql('alter table "webhook_deliveries" add constraint "webhook_deliveries_event_id_foreign" foreign key ("event_id") references "events" ("id") on delete cascade;')
    this.addSql('alter table "webhook_deliveries" add constraint "webhook_deliveries_status_check" check ("status" in (\'pending\', \'succeeded\', \'failed\'));')
  }

  override down (): void | Promise<void> {
    this.addSql('alter table "webhook_deliveries" drop constraint "webhook_deliveries_event_id_foreign";')
    this.addSql('alter table "webhook_deliveries" drop constraint "webhook_deliveries_endpoint_id_foreign";')

    this.addSql('drop table if exists "events" cascade;')
    this.addSql('drop table if exists "webhook_endpoints" cascade;')
    this.addSql('drop table if exists "webhook_deliveries" cascade;')
  }
}
