import { pino } from 'pino';
import { loadConfigOrExit } from '../core/platform/config-errors.js';
import { createServices } from '../core/platform/services.js';
import { installTemporalLogging } from '../core/temporal/logging.js';
import { Runtime } from '@temporalio/worker';
import { createWorkerFor } from './create-worker.js';
import { watchedThreads } from './workflow-watchdog.cjs';

const config = loadConfigOrExit({
  DATABASE_URL: 'for `npm run worker` (use `npm start` for the embedded default)',
  TEMPORAL_ADDRESS: 'for `npm run worker`',
});
// JSON lines on stdout (under `npm start`, into DATA_DIR/logs/parley.log); expected activity failures without stacks.
installTemporalLogging(pino({ level: config.LOG_LEVEL, name: 'worker' }));
const runtime = await createServices(config, config.DATABASE_URL, { poolSize: 20 });
const { worker, connection } = await createWorkerFor(config, runtime, config.TEMPORAL_ADDRESS);
if (config.WORKFLOW_WATCHDOG === 'per-thread' && watchedThreads() === 0) {
  Runtime.instance().logger.warn(
    'worker/workflow-watchdog.cjs is not preloaded (node --require): workflow threads use a watchdog thread per call, which is much slower',
    {
      code: 'WORKFLOW_WATCHDOG_MISSING',
    },
  );
}
// Worker.run() handles SIGINT/SIGTERM itself: it stops polling and drains in-flight tasks.
const running = worker.run();
// Tells `npm start`, when it is the parent, that the worker is polling.
process.send?.('ready');
await running;
await connection.close();
await runtime.pool.end();
// The SDK's native runtime keeps handles open after a clean shutdown; nothing is left to finish.
process.exit(0);
