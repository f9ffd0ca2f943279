import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../core/platform/config.js';
import { Keyring } from '../core/platform/crypto.js';
import { createServices } from '../core/platform/services.js';
import { createTemporalClient } from '../core/temporal/client.js';
import { startApi } from '../api/server.js';
import { workflowBundleOptions } from '../worker/create-worker.js';
import { freePort } from '../scripts/lib/ports.js';
import { ensureTemporalCli } from '../scripts/lib/temporal-cli.js';
import { startTestTemporal } from '../scripts/lib/test-env.js';
import { benchDatabase } from './lib/database.js';

/**
 * `npm run bench:pulse [-- --contacts 10000 --rate 80]`: one campaign over N opted-in contacts
 * into the sandbox, with the worker in its own process. Uses DATABASE_URL / TEST_DATABASE_URL
 * (a fresh database on that server, dropped afterwards) or an embedded PostgreSQL, and a
 * Temporal dev server from the installed CLI.
 */
const { values: args } = parseArgs({
  options: { contacts: { type: 'string', default: '10000' }, rate: { type: 'string', default: '80' } },
});
const N = Number(args.contacts);
const RATE = Number(args.rate);
const root = fileURLToPath(new URL('..', import.meta.url));
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const cleanups: (() => Promise<unknown>)[] = [];
const ADMIN = `prl_admin_bench_${randomBytes(12).toString('hex')}`;
const ENC = Keyring.generateSpec('b1');

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 102.4) / 10;
}

let code = 1;
try {
  const cli = await ensureTemporalCli(process.env.TEMPORAL_CLI, log);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const [{ url: databaseUrl }, temporalEnv] = await Promise.all([
    benchDatabase(cleanups, log),
    startTestTemporal(cli, { dbFilename: path.join(tmp, 'temporal.db') }),
  ]);
  cleanups.push(() => temporalEnv.teardown());
  const address = temporalEnv.address;
  const bundlePath = path.join(tmp, 'workflows.js');
  await writeFile(bundlePath, (await bundleWorkflowCode({ ...workflowBundleOptions(), logger: undefined })).code);

  const env = {
    PORT: String(await freePort()),
    ADMIN_API_KEY: ADMIN,
    PARLEY_ENCRYPTION_KEY: ENC,
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: `bench-${randomBytes(4).toString('hex')}`,
    DATA_DIR: tmp,
    LOG_LEVEL: 'warn',
    PARLEY_WORKFLOW_BUNDLE: bundlePath,
  };
  const config = loadConfig(env);
  const runtime = await createServices(config, databaseUrl);
  cleanups.push(() => runtime.pool.end());
  const api = await startApi(config, runtime, address);
  cleanups.push(() => api.close());
  const worker = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env },
  });
  cleanups.push(async () => {
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
  });

  const call = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(api.url + url, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = (await res.json().catch(() => undefined)) as any;
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const tenantId = 'bench-pulse';
  const { api_key: key } = await call('POST', '/routes/tenants', ADMIN, { id: tenantId, name: 'Pulse bench' });
  log(`seeding ${N} contacts…`);
  for (let i = 0; i < N; i += 1000) {
    const contacts = Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({
      phone: `+1555${String(i + j).padStart(7, '0')}`,
      name: `Contact ${i + j}`,
      tags: ['bench'],
      opted_in: true,
    }));
    await call('PUT', `/routes/tenants/${tenantId}/contacts`, key, { contacts });
  }
  const campaign = await call('POST', `/routes/tenants/${tenantId}/pulse/campaigns`, key, {
    name: 'Bench pulse',
    cron: '0 0 1 1 *',
    timezone: 'UTC',
    audience: { tags: ['bench'] },
    message: { template: 'Hi {{name}}, this is your weekly pulse.', window_template: 'weekly_pulse' },
    rate_per_second: RATE,
  });
  await delay(2000); // let the worker finish starting before measuring it
  const memStart = await rssMb(worker.pid!);
  let memPeak = memStart;

  log(`campaign ${campaign.id}: ${N} contacts at ${RATE}/s (about ${Math.round(N / RATE)} s)`);
  const t0 = Date.now();
  const { run_id: runId } = await call('POST', `/routes/tenants/${tenantId}/pulse/campaigns/${campaign.id}/trigger`, key);
  let run: any;
  for (let tick = 0; ; tick++) {
    await delay(1000);
    memPeak = Math.max(memPeak, await rssMb(worker.pid!));
    run = (await call('GET', `/routes/tenants/${tenantId}/pulse/campaigns/${campaign.id}/runs`, key)).runs.find(
      (r: any) => r.run_id === runId,
    );
    if (run && run.status !== 'running') break;
    if (tick % 10 === 0) log(`sent ${run?.sent ?? 0}/${N}`);
  }
  const totalS = (Date.now() - t0) / 1000;
  const memEnd = await rssMb(worker.pid!);

  const {
    rows: [span],
  } = await runtime.pool.query<{ n: number; first: Date; last: Date }>(
    `SELECT count(*)::int AS n, min(sent_at) AS first, max(sent_at) AS last FROM campaign_sends WHERE run_id = $1 AND status = 'sent'`,
    [runId],
  );
  const {
    rows: [dupes],
  } = await runtime.pool.query<{ total: number; people: number }>(
    'SELECT count(*)::int AS total, count(DISTINCT to_hash)::int AS people FROM sandbox_messages WHERE tenant_id = $1',
    [tenantId],
  );
  const temporal = await createTemporalClient({ address, namespace: 'default', keyring: runtime.keyring });
  let largestHistory = 0;
  let executions = 0;
  for await (const wf of temporal.workflow.list({ query: `WorkflowId = "${runId}"` })) {
    executions++;
    largestHistory = Math.max(largestHistory, wf.historyLength);
  }
  await temporal.connection.close();

  const achieved = span.n > 1 ? (span.n - 1) / ((span.last.getTime() - span.first.getTime()) / 1000) : 0;
  const result = {
    contacts: N,
    configured_rate: RATE,
    status: run.status,
    sent: run.sent,
    failed: run.failed,
    achieved_rate: Math.round(achieved * 100) / 100,
    rate_deviation_pct: Math.round(((achieved - RATE) / RATE) * 1000) / 10,
    total_time_s: Math.round(totalS * 10) / 10,
    worker_rss_mb: { start: memStart, end: memEnd, peak: memPeak },
    workflow_executions: executions,
    largest_history_events: largestHistory,
    duplicates: dupes.total - dupes.people,
  };
  console.log(JSON.stringify(result, null, 2));
  code = result.duplicates === 0 && run.sent === N && Math.abs(result.rate_deviation_pct) <= 5 ? 0 : 2;
  if (code !== 0) log('outside target: see duplicates / sent / rate_deviation_pct');
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
process.exit(code);
