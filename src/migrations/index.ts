import type { MigrationObject } from '@mikro-orm/core'
import { Migration20261123141859 } from './Migration20261123141859.js'
import { Migration20261123154634 } from './Migration20261123154634.js'
import { Migration20261123163500 } from './Migration20261123163500.js'
import { Migration20261126093843 } from './Migration20261126093843.js'
import { Migration20261206151656 } from './Migration20261206151656.js'
import { Migration20261206153128 } from './Migration20261206153128.js'

/**
 * Every migration, in order. Listed explicitly (not discovered from the file system) so the
 * same list runs under TypeScript and from dist/. `npm run migration:create` writes a new file;
 * add it here.
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261123141859', class: Migration20261123141859 },
  { name: 'Migration20261123154634', class: Migration20261123154634 },
  { name: 'Migration20261123163500', class: Migration20261123163500 },
  { name: 'Migration20261126093843', class: Migration20261126093843 },
  { name: 'Migration20261206151656', class: Migration20261206151656 },
  { name: 'Migration20261206153128', class: Migration20261206153128 }
]
