import { loadConfig } from '../core/config.js';
import { createRuntime, requireSetting } from '../core/runtime.js';
import { startApi } from './server.js';

const config = loadConfig();
const databaseUrl = requireSetting(config.DATABASE_URL, 'DATABASE_URL', 'for `npm run api` (use `npm start` for the embedded default)');
const temporalAddress = requireSetting(config.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS', 'for `npm run api`');
const runtime = await createRuntime(config, databaseUrl);
const api = await startApi(config, runtime, temporalAddress);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api.close().then(() => runtime.pool.end()).then(() => process.exit(0));
  });
}
