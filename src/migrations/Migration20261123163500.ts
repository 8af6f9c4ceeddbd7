import { Migration } from '@mikro-orm/migrations'

export class Migration20261123163500 extends Migration {
  override name = 'Migration20261123163500'

  override up (): void | Promise<void> {
    this.addSql('alter table "applications" add column "introspection_scopes" text[] null;')
  }

  override down (): void | Promise<void> {
    this.addSql('alter table "applications" drop column "introspection_scopes";')
  }
}
