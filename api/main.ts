import { loadConfig } from '../core/platform/config.js';
import { createServices, requireSetting } from '../core/platform/services.js';
import { startApi } from './server.js';

const config = loadConfig();
const databaseUrl = requireSetting(config.DATABASE_URL, 'DATABASE_URL', 'for `npm run api` (use `npm start` for the embedded default)');
const temporalAddress = requireSetting(config.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS', 'for `npm run api`');
const runtime = await createServices(config, databaseUrl);
const api = await startApi(config, runtime, temporalAddress);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api
      .close()
      .then(() => runtime.pool.end())
      .then(() => process.exit(0));
  });
}
