import { Migration } from '@mikro-orm/migrations'

export class Migration20261123141859 extends Migration {
  override name = 'Migration20261123141859'

  override up (): void | Promise<void> {
    this.addSql('create table "applications" ("id" uuid not null, "name" varchar(100) not null, "client_id" varchar(64) not null, "client_secret_hash" text null, "confidential" boolean not null default true, "redirect_uris" text[] not null default \'{}\', "scopes" text[] not null default \'{}\', "introspection_audiences" text[] null, "token_format" text not null default \'opaque\', "created_at" timestamptz not null, primary key ("id"));')
    this.addSql('alter table "applications" add constraint "applications_client_id_unique" unique ("client_id");')
    this.addSql('alter table "applications" add constraint "applications_token_format_check" check ("token_format" in (\'opaque\', \'jwt\'));')

    this.addSql('create table "audit_events" ("id" uuid not null, "created_at" timestamptz not null, "actor_id" uuid null, "actor" varchar(100) not null, "action" varchar(50) not null, "target_type" varchar(30) null, "target_id" varchar(64) null, "target" varchar(200) null, "ip" varchar(45) null, "user_agent" varchar(300) null, "details" jsonb null, primary key ("id"));')
    this.addSql('create index "audit_events_created_at_index" on "audit_events" ("created_at");')
    this.addSql('create index "audit_events_actor_id_index" on "audit_events" ("actor_id");')
    this.addSql('create index "audit_events_action_index" on "audit_events" ("action");')
    this.addSql('create index "audit_events_target_id_index" on "audit_events" ("target_id");')

    this.addSql('create table "users" ("id" uuid not null, "username" varchar(40) not null, "email" varchar(254) null, "password_hash" text null, "admin" boolean not null default false, "suspended_at" timestamptz null, "created_at" timestamptz not null, primary key ("id"));')
    this.addSql('create unique index "users_username_lower_unique" on "users" (lower("username"));')

    this.addSql('create table "access_tokens" ("id" uuid not null, "name" varchar(100) not null, "digest" varchar(64) not null, "last_eight" varchar(8) not null, "scopes" text[] not null, "audience" text[] null, "user_id" uuid null, "application_id" uuid not null, "created_by_id" uuid null, "created_at" timestamptz not null, "expires_at" timestamptz null, "revoked_at" timestamptz null, "last_used_at" timestamptz null, "last_used_ip" varchar(45) null, "rotated_from" uuid null, primary key ("id"));')
    this.addSql('alter table "access_tokens" add constraint "access_tokens_digest_unique" unique ("digest");')
    this.addSql('create index "access_tokens_user_id_index" on "access_tokens" ("user_id");')
    this.addSql('create index "access_tokens_application_id_index" on "access_tokens" ("application_id");')

    this.addSql('alter table "access_tokens" add constraint "access_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;')
    this.addSql('alter table "access_tokens" add constraint "access_tokens_application_id_foreign" foreign key ("application_id") references "applications" ("id") on delete cascade;')
    this.addSql('alter table "access_tokens" add constraint "access_tokens_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on delete set null;')
  }
}
