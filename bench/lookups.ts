import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once as onceEvent } from 'node:events';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../core/platform/config.js';
import { Keyring } from '../core/platform/crypto.js';
import { createServices } from '../core/platform/services.js';
import { createTenant } from '../core/tenants/tenants.js';
import { dataSourcesSchema } from '../core/data-engine/config.js';
import { loadDataSource, replaceDataSources } from '../core/data-engine/store.js';
import type { LookupOutcome } from '../contracts/data-lookup.js';
import { createTemporalClient } from '../core/temporal/client.js';
import proto from '@temporalio/proto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createDataActivities } from '../activities/data.js';
import { lookupPlan } from '../core/data-engine/plan.js';
import { processCpuMs } from './lib/stats.js';
import { createWorker } from '../worker/create-worker.js';
import { startEmbeddedPostgres } from '../scripts/lib/embedded-postgres.js';
import { freePort } from '../scripts/lib/ports.js';
import { ensureTemporalCli } from '../scripts/lib/temporal-cli.js';
import { startTemporalDev } from '../scripts/lib/temporal-dev.js';

/**
 * `npm run bench:lookups`: 100 concurrent lookups for one tenant against a fake REST source
 * answering in 50 ms. Starts its own Temporal dev server, PostgreSQL (DATABASE_URL's server,
 * else embedded) and worker. Prints p50/p99 of the lookup time (from the workflow history, see
 * lookupSpan) and of Parley's overhead over the source's own 50 ms, plus the
 * activity's own time, end-to-end times and the activity without Temporal.
 */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SOURCE_LATENCY_MS = 50;
const say = (line: string) => process.stdout.write(`${line}\n`);
const cleanups: (() => Promise<unknown>)[] = [];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const line = (name: string, xs: number[]) =>
  say(
    `${name.padEnd(34)} p50 ${pct(xs, 50).toFixed(1).padStart(7)} ms   p99 ${pct(xs, 99).toFixed(1).padStart(7)} ms   max ${Math.max(...xs)
      .toFixed(1)
      .padStart(7)} ms`,
  );

try {
  const cli = await ensureTemporalCli(process.env.TEMPORAL_CLI, (l) => say(`[bench] ${l}`));
  // A CLI dev server in its own process: this process's Temporal runtime belongs to the worker.
  const temporal = await startTemporalDev({ cli, port: await freePort(), uiPort: await freePort(), headless: true });
  cleanups.push(() => temporal.stop());

  let serverUrl = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-pg-'));
    const server = await startEmbeddedPostgres({
      dataDir: path.join(dir, 'pg'),
      port: await freePort(),
      persistent: false,
      log: () => undefined,
    });
    cleanups.push(
      () => server.stop(),
      () => rm(dir, { recursive: true, force: true }),
    );
    serverUrl = server.adminUrl;
  }
  const dbName = `parley_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await c.end();
  });
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${dbName}`;

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    DATABASE_URL: dbUrl.toString(),
    ADMIN_API_KEY: 'prl_admin_bench_0123456789abcdef',
    PARLEY_ENCRYPTION_KEY: Keyring.generateSpec(),
    DATA_DIR: dataDir,
    TEMPORAL_TASK_QUEUE: `bench-${randomBytes(4).toString('hex')}`,
    // The fake source listens on 127.0.0.1, a private address the egress policy opens only when told.
    EGRESS_ALLOW: '127.0.0.1/32',
  });
  const runtime = await createServices(config, dbUrl.toString(), { poolSize: 20 });
  cleanups.push(() => runtime.pool.end());

  // The source runs in its own process so its event loop does not compete with the worker's.
  const source = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./fake-source.ts', import.meta.url)), String(SOURCE_LATENCY_MS), 'bench-key'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  cleanups.push(async () => {
    source.kill('SIGTERM');
    if (source.exitCode === null) await onceEvent(source, 'exit');
  });
  const [firstLine] = (await onceEvent(source.stdout!, 'data')) as [Buffer];
  const sourceUrl = firstLine.toString().trim();

  const { tenant } = await createTenant(runtime.db, { id: 'bench-tenant', name: 'Bench' });
  const body = dataSourcesSchema.parse({
    data_sources: [
      {
        id: 'inventory_api',
        name: 'Inventory',
        type: 'rest_api',
        connection: { base_url: `${sourceUrl}/api`, api_key: 'bench-key', headers: { Authorization: 'Bearer {api_key}' } },
        endpoints: { check_stock: '/products/{sku}/stock' },
      },
    ],
  });
  await replaceDataSources(runtime.db, runtime.keyring, tenant.id, body.data_sources);
  const stored = (await loadDataSource(runtime.db, runtime.keyring, tenant.id, 'inventory_api'))!;

  const { worker, connection } = await createWorker({
    address: temporal.address,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: runtime.db,
    keyring: runtime.keyring,
    providers: runtime.providers,
  });
  const running = worker.run();
  cleanups.push(async () => {
    worker.shutdown();
    await running;
    await connection.close();
  });
  const client = await createTemporalClient({ address: temporal.address, namespace: config.TEMPORAL_NAMESPACE, keyring: runtime.keyring });
  cleanups.push(() => client.connection.close());

  const once = async () => {
    const started = performance.now();
    const plan = lookupPlan(tenant.id, stored, 'check_stock', { sku: 'SKU-789' }, ['sku']);
    const workflowId = `bench/${randomBytes(8).toString('hex')}`;
    const r = (await client.workflow.execute('dataLookupWorkflow', {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      workflowId,
      args: [{ plan, replyTemplate: '{{name}}: {{quantity}}', fallbackText: 'down', notFoundText: 'none' }],
    })) as { outcome: LookupOutcome };
    if (!r.outcome.ok) throw new Error(`lookup failed: ${r.outcome.error}`);
    return { workflowId, e2e: performance.now() - started, source: r.outcome.sourceMs ?? 0, worker: r.outcome.totalMs };
  };

  // The lookup as the workflow experiences it, from the server's history: from the moment it
  // is scheduled until the workflow task that holds its result. A local activity (a source
  // Parley serves): the marker's original schedule time → that task's completion (the audit row
  // included). A regular activity: scheduled → the workflow task that receives the result starts.
  const { EventType } = proto.temporal.api.enums.v1;
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
  async function lookupSpan(workflowId: string): Promise<number> {
    const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const at = (type: number, from = 0) => events.slice(from).find((e) => e.eventType === type);
    const scheduled = at(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
    if (scheduled) {
      const done = events.findIndex((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
      return ms(at(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, done)?.eventTime) - ms(scheduled.eventTime);
    }
    const markers = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
    const data = markers
      .map((m) => JSON.parse(Buffer.from(m.markerRecordedEventAttributes!.details!.data!.payloads![0].data!).toString()))
      .find((d: { activity_type?: string; activityType?: string }) => (d.activity_type ?? d.activityType) === 'dataLookup');
    const original = data.original_schedule_time ?? data.originalScheduleTime;
    const scheduledAt = typeof original === 'string' ? Date.parse(original) : ms(original);
    const completed = events
      .slice(0, events.indexOf(markers[0]))
      .reverse()
      .find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
    return ms(completed?.eventTime) - scheduledAt;
  }

  // Warm-up: connections, workflow cache, the fake's keep-alive sockets.
  await Promise.all(Array.from({ length: 20 }, once));
  const results: Awaited<ReturnType<typeof once>>[] = [];
  // CPU each lookup costs Parley's worker (this process; the source runs in its own) and the
  // Temporal server: what a burst of concurrent lookups must queue behind on this machine.
  const cpuBefore = { worker: process.cpuUsage(), temporal: await processCpuMs(temporal.pid) };
  for (let round = 0; round < ROUNDS; round++) results.push(...(await Promise.all(Array.from({ length: CONCURRENCY }, once))));
  const workerCpu = process.cpuUsage(cpuBefore.worker);
  const cpuPerLookup = {
    worker: (workerCpu.user + workerCpu.system) / 1000 / results.length,
    temporal: ((await processCpuMs(temporal.pid)) - cpuBefore.temporal) / results.length,
  };

  // The same lookup activity called directly, without Temporal: Parley's own code path
  // (configuration read, decryption, HTTP call) apart from Temporal's dispatch.
  const { dataLookup } = createDataActivities({ db: runtime.db, keyring: runtime.keyring });
  const direct = async () => {
    const started = performance.now();
    const plan = lookupPlan(tenant.id, stored, 'check_stock', { sku: 'SKU-789' }, ['sku']);
    await new MockActivityEnvironment().run(dataLookup, { ...plan.request, attemptTimeoutMs: plan.attemptTimeoutMs });
    return performance.now() - started;
  };
  const directTimes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) directTimes.push(...(await Promise.all(Array.from({ length: CONCURRENCY }, direct))));

  const spans: number[] = [];
  for (let i = 0; i < results.length; i += 20)
    spans.push(...(await Promise.all(results.slice(i, i + 20).map((r) => lookupSpan(r.workflowId)))));

  say(`\n${ROUNDS} rounds × ${CONCURRENCY} concurrent lookups, one tenant, REST source answering in ${SOURCE_LATENCY_MS} ms\n`);
  line('lookup (from the history)', spans);
  line(
    'overhead over the source (lookup−50)',
    spans.map((t) => t - SOURCE_LATENCY_MS),
  );
  line(
    'lookup as the worker times it',
    results.map((r) => r.worker),
  );
  line(
    '  its overhead over the source',
    results.map((r) => r.worker - SOURCE_LATENCY_MS),
  );
  line(
    'source call inside the activity',
    results.map((r) => r.source),
  );
  line(
    'activity-side overhead (source−50)',
    results.map((r) => r.source - SOURCE_LATENCY_MS),
  );
  line(
    'end to end (workflow start→result)',
    results.map((r) => r.e2e),
  );
  line('lookup activity without Temporal', directTimes);
  line(
    '  its overhead over the source',
    directTimes.map((t) => t - SOURCE_LATENCY_MS),
  );
  if (process.env.BENCH_SLOWEST) {
    const slow = results.reduce((a, b) => (b.e2e > a.e2e ? b : a));
    const ev = (await client.workflow.getHandle(slow.workflowId).fetchHistory()).events ?? [];
    const t0 = ms(ev[0].eventTime);
    for (const e of ev) say(`${(ms(e.eventTime) - t0).toFixed(0).padStart(6)} ${EventType[e.eventType!]}`);
  }
  const perLookup = cpuPerLookup.worker + cpuPerLookup.temporal;
  say(
    `\nCPU per lookup: ${cpuPerLookup.worker.toFixed(1)} ms in the worker process (its client calls included) + ${cpuPerLookup.temporal.toFixed(1)} ms in the Temporal server`,
  );
  say(
    `  ${CONCURRENCY} at once: ${((CONCURRENCY * perLookup) / os.cpus().length).toFixed(0)} ms of work per core on ${os.cpus().length} cores before the last one can finish`,
  );
  say('\ntarget: overhead p99 < 50 ms (seed: < 3 s average, 100+ concurrent lookups per tenant)');
} catch (err) {
  process.exitCode = 1;
  say(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
