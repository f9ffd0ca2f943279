import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { loadConfig } from '../core/platform/config.js';
import { createServices } from '../core/platform/services.js';
import { resolveSecrets } from '../core/platform/secrets.js';
import { startApi } from '../api/server.js';
import { startEmbeddedPostgres, type EmbeddedPg } from './lib/embedded-postgres.js';
import { isPortFree } from './lib/ports.js';
import { ensureTemporalCli } from './lib/temporal-cli.js';
import { startTemporalDev, type TemporalDev } from './lib/temporal-dev.js';
import { WORKER_NODE_FLAGS } from '../worker/node-flags.js';

/**
 * `npm start`: everything on one machine. A Temporal dev server and an embedded PostgreSQL
 * under DATA_DIR (unless TEMPORAL_ADDRESS / DATABASE_URL point elsewhere), migrations,
 * the API with its outbox relay, and the worker (a child process). Ctrl-C stops it all in
 * reverse order.
 */
const config = loadConfig();
const say = (line: string) => process.stdout.write(`[parley] ${line}\n`);
const dataDir = path.resolve(config.DATA_DIR);
await mkdir(dataDir, { recursive: true });

const stops: (() => Promise<void>)[] = [];
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('shutting down…');
    for (const stop of stops.reverse()) await stop().catch((err: Error) => say(`shutdown step failed: ${err.message}`));
  }
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  let databaseUrl = config.DATABASE_URL;
  let migrationUrl = config.DATABASE_MIGRATION_URL;
  if (!databaseUrl) {
    const pg: EmbeddedPg = await startEmbeddedPostgres({
      dataDir: path.join(dataDir, 'postgres'),
      port: config.EMBEDDED_PG_PORT,
      log: say,
    });
    stops.push(() => pg.stop());
    databaseUrl = pg.url;
    migrationUrl = pg.migrationUrl;
    say(`PostgreSQL (embedded) in ${pg.dataDir}`);
  }

  let temporalAddress = config.TEMPORAL_ADDRESS;
  let temporalUi = 'your Temporal cluster UI';
  if (!temporalAddress) {
    for (const port of [config.TEMPORAL_PORT, config.TEMPORAL_UI_PORT]) {
      if (!(await isPortFree(port)))
        throw new Error(`port ${port} is in use: set TEMPORAL_PORT/TEMPORAL_UI_PORT, or TEMPORAL_ADDRESS to use a running server`);
    }
    const cli = await ensureTemporalCli(config.TEMPORAL_CLI, say);
    const dev: TemporalDev = await startTemporalDev({
      cli,
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      dbFile: path.join(dataDir, 'temporal.db'),
    });
    stops.push(() => dev.stop());
    temporalAddress = dev.address;
    temporalUi = dev.uiUrl;
  }

  const runtime = await createServices({ ...config, DATABASE_MIGRATION_URL: migrationUrl }, databaseUrl, { poolSize: 10 });
  stops.push(() => runtime.pool.end());
  const secrets = await resolveSecrets(config);

  // The worker runs as its own process, as in a real deployment: the API's event loop stays free
  // for webhooks while activities and workflow tasks use the machine's other core.
  // A CPU profile of npm start (bench/lib/stack.ts, BENCH_CPU_PROF) covers the worker too.
  const profiling = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
  const worker = spawn(
    process.execPath,
    [...profiling, ...WORKER_NODE_FLAGS, fileURLToPath(new URL('../worker/main.ts', import.meta.url))],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        ...(migrationUrl ? { DATABASE_MIGRATION_URL: migrationUrl } : {}),
        TEMPORAL_ADDRESS: temporalAddress,
        ADMIN_API_KEY: secrets.adminApiKey,
        PARLEY_ENCRYPTION_KEY: secrets.encryptionKey,
      },
    },
  );
  const workerExited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  // Ready means polling: a message sent before then would wait for the worker to bundle its workflows.
  const workerReady = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    void workerExited.then(() => reject(new Error('the worker exited during start-up')));
  });
  worker.once('exit', (code, signal) => {
    if (stopping) return;
    say(`worker exited (${signal ?? code}); stopping`);
    void shutdown(1);
  });
  stops.push(async () => {
    if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGTERM');
    // The worker drains in-flight tasks first; a stuck one must not keep the machine's ports busy.
    const force = setTimeout(() => worker.kill('SIGKILL'), 20_000);
    await workerExited;
    clearTimeout(force);
  });

  const api = await startApi(config, runtime, temporalAddress);
  stops.push(() => api.close());

  await workerReady;
  say(`API:         ${api.url}  (OpenAPI: ${api.url}/openapi.json, docs: ${api.url}/docs)`);
  say(`Temporal UI: ${temporalUi}`);
  // Tenant-configured URLs and hosts (data sources, AI base_url, channel APIs) reach only these.
  say(
    `Egress:      public addresses${config.EGRESS_ALLOW.length ? ` and ${config.EGRESS_ALLOW.join(', ')}` : ' only (EGRESS_ALLOW opens more)'}`,
  );
  say(`Admin key:   ${runtime.adminApiKey}`);
  say('Ctrl-C stops everything.');
} catch (err) {
  say(`start failed: ${(err as Error).message}`);
  await shutdown(1);
}
