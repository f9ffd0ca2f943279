import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Keyring } from '../core/platform/crypto.js';
import { EncryptionCodec } from '../core/temporal/codec.js';
import { startEmbeddedPostgres } from '../scripts/lib/embedded-postgres.js';
import { freePort } from '../scripts/lib/ports.js';
import { ensureTemporalCli } from '../scripts/lib/temporal-cli.js';
import { startTemporalDev } from '../scripts/lib/temporal-dev.js';
import { workflowBundleOptions } from '../worker/create-worker.js';

/**
 * `npm run bench:codec`: what the payload codec costs.
 * 1. encode/decode throughput for 1 KB payloads (AES-256-GCM, one payload per call, as the SDK does);
 * 2. inbound-to-reply latency with the codec on and off, two full stacks (API + worker) side by
 *    side on one Temporal dev server and one PostgreSQL, messages interleaved so both see the same load.
 * BENCH_MESSAGES (default 40) per stack and phase; TEST_DATABASE_URL uses an existing server.
 */
const env = process.env;
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const cleanups: (() => Promise<unknown>)[] = [];

async function microbench(): Promise<void> {
  const codec = new EncryptionCodec(new Keyring(Keyring.generateSpec('b1')));
  const payload = { metadata: { encoding: new TextEncoder().encode('json/plain') }, data: new Uint8Array(1024).fill(97) };
  const n = 50_000;
  const run = async (label: string, fn: () => Promise<unknown>) => {
    for (let i = 0; i < 2000; i++) await fn();
    const start = performance.now();
    for (let i = 0; i < n; i++) await fn();
    const s = (performance.now() - start) / 1000;
    console.log(
      `${label.padEnd(8)} ${(n / s).toFixed(0).padStart(8)} payloads/s  ${((n * 1024) / s / 1e6).toFixed(1).padStart(6)} MB/s  ${((s / n) * 1e6).toFixed(1)} µs each`,
    );
  };
  const [encoded] = await codec.encode([payload]);
  await run('encode', () => codec.encode([payload]));
  await run('decode', () => codec.decode([encoded]));
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p95: pct(s, 95), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
};

try {
  console.log('codec throughput, 1 KB payloads');
  await microbench();

  const cli = await ensureTemporalCli(env.TEMPORAL_CLI, log);
  const tdir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-temporal-'));
  const temporal = await startTemporalDev({
    cli,
    port: await freePort(),
    uiPort: await freePort(),
    headless: true,
    dbFile: path.join(tdir, 'temporal.db'),
  });
  cleanups.push(
    () => temporal.stop(),
    () => rm(tdir, { recursive: true, force: true }),
  );
  let databaseUrl = env.TEST_DATABASE_URL;
  if (!databaseUrl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-pg-'));
    const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort(), persistent: false, log });
    cleanups.push(
      () => server.stop(),
      () => rm(dir, { recursive: true, force: true }),
    );
    databaseUrl = server.adminUrl;
  }
  const bundleDir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-bundle-'));
  cleanups.push(() => rm(bundleDir, { recursive: true, force: true }));
  const bundlePath = path.join(bundleDir, 'workflows.js');
  await writeFile(bundlePath, (await bundleWorkflowCode({ ...workflowBundleOptions(), logger: undefined })).code);
  // The test harness builds exactly the stack we want (API on a free port + worker on its own queue).
  Object.assign(env, { TEST_DATABASE_URL: databaseUrl, TEST_TEMPORAL_ADDRESS: temporal.address, PARLEY_WORKFLOW_BUNDLE: bundlePath });
  const { createHarness, uniquePhone } = await import('../test/helpers/harness.js');

  const stacks = await Promise.all(
    (['on', 'off'] as const).map(async (codec) => {
      const h = await createHarness({ env: { PARLEY_PAYLOAD_CODEC: codec, RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
      cleanups.unshift(() => h.close());
      const t = await h.createTenant();
      await h.request('PUT', `/routes/tenants/${t.id}/knowledge`, {
        key: t.key,
        body: { entries: [{ title: 'Opening hours', content: 'x'.repeat(900) }] },
      });
      return { codec, h, t, firsts: [] as number[], followUps: [] as number[] };
    }),
  );

  async function roundTrip(s: (typeof stacks)[number], to: string, text: string): Promise<number> {
    const before = (await s.h.sandbox(s.t.id, s.t.key, to)).length;
    const start = performance.now();
    const res = await s.h.inbound(s.t.key, { from: to, message: text, tenant_id: s.t.id, timestamp: new Date().toISOString() });
    if (res.status !== 202) throw new Error(`inbound: ${res.status}`);
    const toHash = s.h.runtime.keyring.blindIndex(to);
    for (;;) {
      const { rows } = await s.h.runtime.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM sandbox_messages WHERE to_hash = $1`, [
        toHash,
      ]);
      if (rows[0].n > before) return performance.now() - start;
      await delay(2);
    }
  }

  const messages = Number(env.BENCH_MESSAGES ?? 40);
  const phones = stacks.map(() => Array.from({ length: messages + 5 }, () => uniquePhone()));
  for (let i = 0; i < messages + 5; i++) {
    for (const [k, s] of stacks.entries()) {
      const first = await roundTrip(s, phones[k][i], `What are your opening hours? ${'q'.repeat(800)}`);
      const followUp = await roundTrip(s, phones[k][i], `And opening hours on Saturday? ${'q'.repeat(800)}`);
      // The first five rounds warm up JIT, pools and caches.
      if (i >= 5) {
        s.firsts.push(first);
        s.followUps.push(followUp);
      }
    }
  }
  console.log(`\ninbound-to-reply latency, ${messages} messages per stack and phase (ms)`);
  const rows = stacks.map((s) => ({ codec: s.codec, first: summary(s.firsts), followUp: summary(s.followUps) }));
  for (const r of rows) {
    console.log(
      `codec ${r.codec.padEnd(3)}  new conversation p50 ${r.first.p50.toFixed(1)} p95 ${r.first.p95.toFixed(1)} mean ${r.first.mean.toFixed(1)}` +
        `   follow-up p50 ${r.followUp.p50.toFixed(1)} p95 ${r.followUp.p95.toFixed(1)} mean ${r.followUp.mean.toFixed(1)}`,
    );
  }
  const [on, off] = rows;
  const d = (a: number, b: number) => `${(a - b).toFixed(1)} ms`;
  console.log(
    `added by the codec: new conversation p50 ${d(on.first.p50, off.first.p50)} (mean ${d(on.first.mean, off.first.mean)}), ` +
      `follow-up p50 ${d(on.followUp.p50, off.followUp.p50)} (mean ${d(on.followUp.mean, off.followUp.mean)})`,
  );
} finally {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
}
process.exit(0);
