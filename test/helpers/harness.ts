import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Writable } from 'node:stream';
import pg from 'pg';
import type { Worker } from '@temporalio/worker';
import type { AiToolSource } from '../../core/ai/tools.js';
import { loadConfig, type Config } from '../../core/platform/config.js';
import { Keyring } from '../../core/platform/crypto.js';
import { createServices, forkServices, type Services } from '../../core/platform/services.js';
import { createTemporalClient } from '../../core/temporal/client.js';
import { startApi, type RunningApi } from '../../api/server.js';
import { createWorkerFor } from '../../worker/create-worker.js';
import { freePort } from '../../scripts/lib/ports.js';

export const TEST_ADMIN_KEY = 'prl_admin_test_key_0123456789abcdef';
export const TEST_ENCRYPTION_KEY = `t1:${Buffer.alloc(32, 7).toString('base64')}`;

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite with \`npm test\``);
  return value;
}

export const testTemporalAddress = () => requireEnv('TEST_TEMPORAL_ADDRESS');

/** A fresh database on the suite's PostgreSQL server, dropped by the returned function. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const server = new URL(requireEnv('TEST_DATABASE_URL'));
  const name = `parley_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server.toString());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: server.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Captures every log line the API writes, so tests can assert what never appears in logs. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(chunk.toString());
    done();
  }
  text(): string {
    return this.lines.join('');
  }
}

export interface Harness {
  config: Config;
  runtime: Services;
  api: RunningApi;
  baseUrl: string;
  databaseUrl: string;
  logs: LogCapture;
  worker?: Worker;
  /** Runs the in-process worker (started by default). */
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  request(
    method: string,
    url: string,
    opts?: { key?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Record<string, string> }>;
  createTenant(id?: string, extra?: Record<string, unknown>): Promise<{ id: string; key: string }>;
  inbound(key: string, body: Record<string, unknown>): Promise<{ status: number; body: any }>;
  sandbox(tenantId: string, key: string, to: string): Promise<any[]>;
  /** Sends `message` from `from` and waits (30 s at most) for the first reply, timing the round trip. */
  ask(tenant: { id: string; key: string }, message: string, from?: string): Promise<{ text: string; ms: number; from: string }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  worker?: boolean;
  temporalAddress?: string;
  /** LLM tools the in-process worker offers (stand-ins for the Data Engine's lookups). */
  aiTools?: AiToolSource[];
}

/** A real API (listening on a free port) and a real worker on a unique task queue, against real services. */
export async function createHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const db = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-harness-'));
  const temporalAddress = opts.temporalAddress ?? testTemporalAddress();
  const config = loadConfig({
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    PARLEY_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_TASK_QUEUE: `test-${randomBytes(6).toString('hex')}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    RELAY_SWEEP_MS: '200',
    // The test fakes (provider APIs, LLM, tenant sources) listen on 127.0.0.1; Parley's own
    // services there (database, Temporal, this API) stay refused by name.
    EGRESS_ALLOW: '127.0.0.1/32',
    PARLEY_WORKFLOW_BUNDLE: process.env.PARLEY_WORKFLOW_BUNDLE,
    ...opts.env,
  });
  const runtime = await createServices(config, db.url);
  const logs = new LogCapture();
  const api = await startApi(config, runtime, temporalAddress, { logStream: logs });
  const baseUrl = api.url;

  const workerRuntime = forkServices(runtime, 10);
  let running: { worker: Worker; done: Promise<void>; close: () => Promise<void> } | undefined;
  const h: Harness = {
    config,
    runtime,
    api,
    baseUrl,
    databaseUrl: db.url,
    logs,
    async startWorker() {
      const { worker, connection } = await createWorkerFor(config, workerRuntime, temporalAddress, { aiTools: opts.aiTools });
      const done = worker.run();
      running = { worker, done, close: () => connection.close() };
      h.worker = worker;
    },
    async stopWorker() {
      if (!running) return;
      const r = running;
      running = undefined;
      h.worker = undefined;
      if (r.worker.getState() === 'RUNNING') r.worker.shutdown();
      await r.done.catch(() => undefined);
      await r.close();
    },
    async request(method, url, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.key) headers.authorization = `Bearer ${o.key}`;
      let body: string | undefined;
      if (o.body !== undefined) {
        body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(baseUrl + url, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers) };
    },
    async createTenant(id = `t-${randomBytes(4).toString('hex')}`, extra = {}) {
      const res = await h.request('POST', '/routes/tenants', { key: TEST_ADMIN_KEY, body: { id, name: `Tenant ${id}`, ...extra } });
      if (res.status !== 201) throw new Error(`createTenant: ${res.status} ${JSON.stringify(res.body)}`);
      return { id, key: res.body.api_key };
    },
    inbound(key, body) {
      return h.request('POST', '/webhook/inbound', { key, body });
    },
    async sandbox(tenantId, key, to) {
      const res = await h.request('GET', `/routes/tenants/${tenantId}/sandbox/messages?to=${encodeURIComponent(to)}`, { key });
      if (res.status !== 200) throw new Error(`sandbox: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.messages;
    },
    async ask(tenant, message, from = uniquePhone()) {
      const started = Date.now();
      const res = await h.inbound(tenant.key, { from, message, tenant_id: tenant.id, timestamp: new Date().toISOString() });
      if (res.status !== 202) throw new Error(`inbound: ${res.status} ${JSON.stringify(res.body)}`);
      const [sent] = await waitFor(
        async () => {
          const m = await h.sandbox(tenant.id, tenant.key, from);
          return m.length > 0 && m;
        },
        { timeoutMs: 30_000, what: `a reply to "${message}"` },
      );
      return { text: sent.text as string, ms: Date.now() - started, from };
    },
    async close() {
      await h.stopWorker();
      await api.close();
      await runtime.pool.end();
      await workerRuntime.pool.end();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  if (opts.worker !== false) await h.startWorker();
  return h;
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
    await delay(opts.intervalMs ?? 50);
  }
}

export function testKeyring(): Keyring {
  return new Keyring(TEST_ENCRYPTION_KEY);
}

export { createTemporalClient };

export function uniquePhone(): string {
  return `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
}
