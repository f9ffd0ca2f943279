import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startApi } from '../api/server.js';
import { loadConfig } from '../core/platform/config.js';
import { Keyring } from '../core/platform/crypto.js';
import { enqueueJobs } from '../core/legacy-queue/jobs.js';
import { createServices } from '../core/platform/services.js';
import { freePort } from '../scripts/lib/ports.js';
import { ensureTemporalCli } from '../scripts/lib/temporal-cli.js';
import { startTemporalDev } from '../scripts/lib/temporal-dev.js';
import { benchDatabase } from './lib/database.js';

/**
 * `npm run bench:queue [-- --pollers=16 --jobs=10000]`: P concurrent HTTP pollers drain J
 * data_lookup jobs through the real API (GET /queue/next-job, then POST …/complete), as n8n
 * workers would. Starts its own Temporal dev server (the API connects to one) and uses
 * BENCH_DATABASE_URL (a server; a fresh database is created) or an embedded PostgreSQL.
 */
const arg = (name: string, fallback: number) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  const value = hit ? Number(hit.split('=')[1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
};
const POLLERS = arg('pollers', 16);
const JOBS = arg('jobs', 10_000);
const say = (line: string) => process.stdout.write(`[bench:queue] ${line}\n`);
const cleanups: (() => Promise<unknown>)[] = [];

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

try {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const cli = await ensureTemporalCli(process.env.TEMPORAL_CLI, say);
  const [{ url: databaseUrl }, temporal] = await Promise.all([
    benchDatabase(cleanups, say),
    (async () => startTemporalDev({ cli, port: await freePort(), uiPort: await freePort(), headless: true }))(),
  ]);
  cleanups.push(() => temporal.stop());
  const config = loadConfig({
    PORT: String(await freePort()),
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    ADMIN_API_KEY: `prl_admin_${randomBytes(16).toString('hex')}`,
    PARLEY_ENCRYPTION_KEY: Keyring.generateSpec(),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    // The per-key limiter would measure itself, not the queue.
    RATE_LIMIT_PER_MINUTE: '0',
  });
  const runtime = await createServices(config, databaseUrl, { poolSize: 30 });
  cleanups.push(() => runtime.pool.end());
  const api = await startApi(config, runtime, temporal.address);
  cleanups.push(() => api.close());

  const created = await fetch(`${api.url}/routes/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${runtime.adminApiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'bench', name: 'Queue bench' }),
  });
  const { api_key: key } = (await created.json()) as { api_key: string };
  for (let i = 0; i < JOBS; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({
      jobType: 'data_lookup',
      payload: {
        job_type: 'data_lookup',
        tenant_id: 'bench',
        query: 'order status',
        parameters: { order_id: String(i + j) },
        data_source: 'crm_api',
      },
    }));
    await enqueueJobs(runtime.db, runtime.keyring, 'bench', batch);
  }
  say(`${JOBS} jobs queued; ${POLLERS} pollers draining through ${api.url}`);

  const auth = { authorization: `Bearer ${key}` };
  const deliveries = new Map<string, number>();
  const claimMs: number[] = [];
  let errors = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: POLLERS }, async () => {
      for (;;) {
        const t0 = performance.now();
        const res = await fetch(`${api.url}/queue/next-job`, { headers: auth });
        claimMs.push(performance.now() - t0);
        if (res.status === 204) return;
        if (res.status !== 200) {
          errors++;
          await res.arrayBuffer();
          continue;
        }
        const job = (await res.json()) as { job_id: string };
        deliveries.set(job.job_id, (deliveries.get(job.job_id) ?? 0) + 1);
        const done = await fetch(`${api.url}/queue/jobs/${job.job_id}/complete`, { method: 'POST', headers: auth });
        if (done.status !== 200) errors++;
        await done.arrayBuffer();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const sorted = claimMs.sort((a, b) => a - b);
  const doubles = [...deliveries.values()].filter((n) => n > 1).length;
  const left = await runtime.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE status <> 'completed'`);
  say(
    `drained ${deliveries.size}/${JOBS} jobs in ${seconds.toFixed(2)} s: ${(deliveries.size / seconds).toFixed(0)} jobs/s (claim + complete)`,
  );
  say(`claim latency: p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms`);
  say(`double deliveries: ${doubles}; jobs not completed: ${left.rows[0].n}; HTTP errors: ${errors}`);
  process.exitCode = doubles === 0 && deliveries.size === JOBS && errors === 0 ? 0 : 1;
} catch (err) {
  say(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
