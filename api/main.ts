import { pino } from 'pino';
import { loadConfigOrExit } from '../core/platform/config-errors.js';
import { createServices } from '../core/platform/services.js';
import { installTemporalLogging } from '../core/temporal/logging.js';
import { startApi } from './server.js';

const config = loadConfigOrExit({
  DATABASE_URL: 'for `npm run api` (use `npm start` for the embedded default)',
  TEMPORAL_ADDRESS: 'for `npm run api`',
});
// JSON lines on stdout, fastify's and the Temporal SDK's alike.
installTemporalLogging(pino({ level: config.LOG_LEVEL, name: 'api' }));
const runtime = await createServices(config, config.DATABASE_URL);
const api = await startApi(config, runtime, config.TEMPORAL_ADDRESS);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api
      .close()
      .then(() => runtime.pool.end())
      .then(() => process.exit(0));
  });
}
