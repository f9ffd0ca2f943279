import { loadConfig } from '../core/platform/config.js';
import { createPool } from '../core/db/client.js';
import { migrate } from '../core/db/migrate.js';
import { requireSetting } from '../core/platform/services.js';

// `npm run migrate`: apply pending SQL migrations as the schema owner, DATABASE_MIGRATION_URL or
// else DATABASE_URL (the app also does this at start-up).
const config = loadConfig();
const pool = createPool(
  requireSetting(config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL, 'DATABASE_MIGRATION_URL or DATABASE_URL', 'for `npm run migrate`'),
);
try {
  const applied = await migrate(pool);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'nothing to apply');
} finally {
  await pool.end();
}
