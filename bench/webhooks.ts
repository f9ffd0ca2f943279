import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfig } from '../core/platform/config.js';
import { Keyring } from '../core/platform/crypto.js';
import { createServices } from '../core/platform/services.js';
import { createDb, createPool } from '../core/db/client.js';
import { channels } from '../core/db/schema.js';
import { slotSpacingSeconds, withSendSlot } from '../core/providers/pacing.js';
import { eq } from 'drizzle-orm';
import { signMeta } from '../core/webhooks/meta.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchDatabase } from './lib/database.js';
import { freePort } from '../scripts/lib/ports.js';
import { ensureTemporalCli } from '../scripts/lib/temporal-cli.js';
import { startTemporalDev } from '../scripts/lib/temporal-dev.js';
import { FakeProvider } from '../test/helpers/fake-providers.js';

/**
 * `npm run bench:webhooks`: Meta webhook ingest and outbound pacing, everything real but Meta
 * (a local fake Cloud API). Phase 1: 400 sends from two replicas to one number limited to
 * 80 msg/s through the real pacing and Meta sender, measured at the fake (accuracy). Phase 2: signed webhooks (one message each) at increasing rates, open
 * loop, against the API running as its own process; ack latency p50/p99 per rate and the highest
 * rate with p99 < 100 ms. No worker runs, so the ack path (verify, durable write, relay into
 * Temporal) is what is measured.
 * Settings: BENCH_RATES (default "25,50,100,200,400,800"), BENCH_SECONDS, BENCH_PACED (messages), BENCH_DATABASE_URL or TEST_DATABASE_URL (a server; a scratch database is made).
 */
const env = process.env;
const say = (line: string) => process.stdout.write(`${line}\n`);
const RATES = (env.BENCH_RATES ?? '25,50,100,200,400,800').split(',').map(Number);
const SECONDS = Number(env.BENCH_SECONDS ?? 3);
const PACED = Number(env.BENCH_PACED ?? 400);
const LIMIT = 80;
const cleanups: (() => Promise<unknown>)[] = [];

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN;
}
const phone = () => `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;

function metaBody(pnid: string, messages: { from: string; text: string }[]) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '1',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550000000', phone_number_id: pnid },
              messages: messages.map((m) => ({
                from: m.from.slice(1),
                id: `wamid.${randomBytes(12).toString('hex')}`,
                timestamp: String(Math.floor(Date.now() / 1000)),
                type: 'text',
                text: { body: m.text },
              })),
            },
          },
        ],
      },
    ],
  });
}

try {
  const cli = await ensureTemporalCli(env.TEMPORAL_CLI, say);
  const { url: databaseUrl } = await benchDatabase(cleanups, say);

  const temporal = await startTemporalDev({ cli, port: await freePort(), uiPort: await freePort(), headless: true });
  cleanups.push(() => temporal.stop());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const adminKey = `prl_admin_${randomBytes(12).toString('hex')}`;
  const apiEnv = {
    PORT: String(await freePort()),
    ADMIN_API_KEY: adminKey,
    PARLEY_ENCRYPTION_KEY: Keyring.generateSpec(),
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: `bench-${randomBytes(4).toString('hex')}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    // Provider traffic arrives from few addresses; the per-address limiter would measure itself.
    RATE_LIMIT_PER_MINUTE: '0',
    // The fake Meta API listens on 127.0.0.1, a private address the egress policy opens only when told.
    EGRESS_ALLOW: '127.0.0.1/32',
  };
  const config = loadConfig(apiEnv);
  // The API in a process of its own (as deployed), so the load generator does not share its event loop.
  const apiUrl = `http://127.0.0.1:${config.PORT}`;
  const apiProcess = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...env, ...Object.fromEntries(Object.entries(apiEnv).map(([k, v]) => [k, String(v)])) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  cleanups.push(async () => {
    apiProcess.kill('SIGTERM');
    await new Promise((resolve) => apiProcess.once('exit', resolve));
  });
  for (let up = false; !up;) {
    if (apiProcess.exitCode !== null) throw new Error('the API process exited');
    up = await fetch(`${apiUrl}/`).then(
      (r) => r.ok,
      () => false,
    );
    if (!up) await delay(200);
  }
  // This process sends for phase 1 directly through the pacing and the Meta sender.
  const runtime = await createServices(config, databaseUrl, { poolSize: 30 });
  cleanups.push(() => runtime.pool.end());
  const meta = await new FakeProvider('meta', { token: 'bench-token' }).start();
  cleanups.push(() => meta.close());

  const call = async (method: string, url: string, key: string, body?: unknown) => {
    const res = await fetch(apiUrl + url, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = (await res.json()) as any;
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const tenant = await call('POST', '/routes/tenants', adminKey, { id: 'bench', name: 'Bench' });
  const channel = async (pnid: string, rate: number) =>
    call('POST', '/routes/tenants/bench/channels', tenant.api_key, {
      provider: 'meta',
      credentials: { phone_number_id: pnid, access_token: 'bench-token', app_secret: 'bench-secret', verify_token: `v${pnid}` },
      api_base_url: meta.url,
      rate_per_second: rate,
    });
  await channel('900001', LIMIT);
  await channel('900002', 1000);
  const post = (body: string) =>
    fetch(`${apiUrl}/webhooks/meta`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signMeta(body, 'bench-secret') },
      body,
    });

  // Phase 1: outbound pacing for one number limited to 80 msg/s: PACED sends at once from two
  // "replicas" (two connection pools), each through the real pacing and the real Meta sender.
  say(`Outbound pacing: ${PACED} sends, two replicas, one number limited to ${LIMIT} msg/s…`);
  const secondPool = createPool(databaseUrl, 10);
  cleanups.push(() => secondPool.end());
  const dbs = [runtime.db, createDb(secondPool)];
  const [paced] = await runtime.db.select().from(channels).where(eq(channels.routingKey, '900001'));
  const provider = runtime.providers.forChannel(paced);
  await Promise.all(
    Array.from({ length: PACED }, (_, i) =>
      withSendSlot(dbs[i % 2], paced.id, paced.ratePerSecond, { maxWaitMs: 600_000, toleranceMs: 20 }, () =>
        provider.sendText({ tenantId: 'bench', channel: paced, to: phone(), text: 'paced', idempotencyKey: `p${i}`, inReplyTo: [] }),
      ),
    ),
  );
  const arrivals = meta
    .sends()
    .map((r) => r.at)
    .sort((a, b) => a - b);
  let maxWindow = 0;
  for (let i = 0, j = 0; i < arrivals.length; i++) {
    while (arrivals[j] < arrivals[i] - 999.999) j++;
    maxWindow = Math.max(maxWindow, i - j + 1);
  }
  const span = (arrivals.at(-1)! - arrivals[0]) / 1000;
  const achieved = (arrivals.length - 1) / span;
  const gaps = arrivals
    .slice(1)
    .map((t, i) => t - arrivals[i])
    .sort((a, b) => a - b);
  say(
    `  sent ${arrivals.length}/${PACED} in ${span.toFixed(2)} s: ${achieved.toFixed(1)} msg/s = ${((achieved / LIMIT) * 100).toFixed(1)}% of the limit`,
  );
  say(
    `  most in any 1-second window: ${maxWindow} (limit ${LIMIT}); gap p1/p50/p99 ${percentile(gaps, 1).toFixed(1)}/${percentile(gaps, 50).toFixed(1)}/${percentile(gaps, 99).toFixed(1)} ms (slot spacing ${(slotSpacingSeconds(LIMIT, 20) * 1000).toFixed(2)} ms)`,
  );

  // Phase 2: ingest. No worker runs: the ack path (verify, durable write, relay into Temporal) is measured.
  say('  (the limit holds on request start times; arrivals at the fake add process scheduling and network jitter)');
  say(`\nMeta webhook ingest (${SECONDS} s per rate, one message per signed webhook, no worker):`);
  say('  rate/s   sent    ok   p50 ms   p99 ms   max ms');
  let best = 0;
  for (const rate of RATES) {
    const total = Math.round(rate * SECONDS);
    const latencies: number[] = [];
    let ok = 0;
    const started = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await delay(wait);
      const body = metaBody('900002', [{ from: phone(), text: 'ping' }]);
      const t0 = performance.now();
      inflight.push(
        post(body)
          .then(async (res) => {
            await res.text();
            latencies.push(performance.now() - t0);
            if (res.status === 200) ok++;
          })
          .catch(() => undefined),
      );
    }
    await Promise.all(inflight);
    const sorted = latencies.sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    say(
      `  ${String(rate).padStart(6)} ${String(total).padStart(6)} ${String(ok).padStart(5)} ${p50.toFixed(1).padStart(8)} ${p99.toFixed(1).padStart(8)} ${sorted.at(-1)!.toFixed(1).padStart(8)}`,
    );
    if (p99 < 100 && ok === total) best = rate;
    else break;
    await delay(1000);
  }
  say(`\nHighest sustained rate with p99 < 100 ms: ${best ? `${best} webhooks/s` : `below ${RATES[0]} webhooks/s`}`);
} catch (err) {
  say(`bench failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
process.exit(process.exitCode ?? 0);
