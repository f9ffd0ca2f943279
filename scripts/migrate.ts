import { loadConfigOrExit } from '../core/platform/config-errors.js';
import { createPool } from '../core/db/client.js';
import { migrate } from '../core/db/migrate.js';

// `npm run migrate`: apply pending SQL migrations as the schema owner, DATABASE_MIGRATION_URL or
// else DATABASE_URL (the app also does this at start-up).
const config = loadConfigOrExit({ DATABASE_URL: 'for `npm run migrate`' });
const pool = createPool(config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL);
try {
  const applied = await migrate(pool);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'nothing to apply');
} finally {
  await pool.end();
}
