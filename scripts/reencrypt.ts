import { loadConfigOrExit } from '../core/platform/config-errors.js';
import { Keyring } from '../core/platform/crypto.js';
import { createPool } from '../core/db/client.js';
import { countStale, reencryptAll } from '../core/privacy/reencrypt.js';
import { resolveSecrets } from '../core/platform/secrets.js';

// `npm run reencrypt`: rewrite every encrypted column as v2 under the first key of
// PARLEY_ENCRYPTION_KEY, bound to its row (after an upgrade, or after a new key was put first),
// while the API and workers keep running.
const config = loadConfigOrExit({ DATABASE_URL: 'for `npm run reencrypt`' });
const pool = createPool(config.DATABASE_URL, 2);
try {
  const keyring = new Keyring((await resolveSecrets(config)).encryptionKey);
  console.log(`primary key: ${keyring.primary.id}; keyring: ${keyring.keyIds().join(', ')}`);
  const result = await reencryptAll(pool, keyring, { log: (line) => console.log(line) });
  const stale = await countStale(pool, keyring);
  console.log(
    `done: ${Object.values(result.columns).reduce((a, b) => a + b, 0)} values re-encrypted, ${result.failed} did not open, ` +
      `${result.unknown.length} columns outside the schema, ${stale} not yet current`,
  );
  process.exitCode = result.failed > 0 || stale > 0 ? 1 : 0;
} finally {
  await pool.end();
}
