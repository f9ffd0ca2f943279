import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { createHarness, testTemporalAddress, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { killHard } from './helpers/processes.js';
import { createPgCrm, type Crm } from './helpers/tenant-crm.js';
import { fakeInventory, type FakeSource } from './helpers/fake-sources.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const FALLBACK = 'A human will get back to you.';
const QUERIES = { order_status: 'SELECT status, tracking_number FROM orders WHERE order_id = $1' };
const INVENTORY_KEY = 'inv-secret-0123456789';
/** Long enough that one attempt outlives a dead worker's lease (2 s) and a second worker's answer. */
const STOCK_TIMEOUT_MS = 6000;

interface DataWorker {
  child: ChildProcess;
  out(): string;
  /** The lookup ids this worker leased, from its log. */
  leased(): string[];
}

describe("data engine: the tenant's own data worker, over Parley's API", () => {
  let h: Harness;
  let crm: Crm;
  let inventory: FakeSource;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let aWorkerKey: string;
  let bWorkerKey: string;
  let dir: string;
  const running: ChildProcess[] = [];

  async function issueKey(t: { id: string; key: string }, scopes: string[]): Promise<string> {
    const res = await h.request('POST', `/routes/tenants/${t.id}/keys`, { key: t.key, body: { name: scopes.join('+'), scopes } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.key;
  }

  /** The data worker's environment: the runner's, minus everything of Parley's own, plus its URL and key. */
  function workerEnv(key: string): Record<string, string> {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] =>
          e[1] !== undefined && !/TEMPORAL|DATABASE_URL|PARLEY_ENCRYPTION_KEY|ADMIN_API_KEY|PARLEY_WORKFLOW_BUNDLE/.test(e[0]),
      ),
    );
    return { ...env, PARLEY_URL: h.baseUrl, PARLEY_DATA_WORKER_KEY: key, DATA_WORKER_CONCURRENCY: '2', LOG_LEVEL: 'info' };
  }

  /** `npm run data-worker -- --tenant <id> --sources <file>` as its own process. */
  function spawnDataWorker(key = aWorkerKey): DataWorker {
    const env = workerEnv(key);
    // No Temporal address in any form: the worker could not reach Parley's namespace if it tried.
    assert.equal(env.TEMPORAL_ADDRESS, undefined);
    assert.ok(!Object.keys(env).some((k) => k.includes('TEMPORAL')));
    assert.ok(!Object.values(env).some((v) => v.includes(testTemporalAddress())));
    const child = spawn(process.execPath, ['--import', 'tsx', 'worker/data-worker.ts', '--tenant', a.id, '--sources', sourcesFile()], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    return {
      child,
      out: () => out,
      leased: () =>
        out
          .split('\n')
          .filter((l) => l.includes('lookup leased'))
          .map((l) => JSON.parse(l).lookup_id as string),
    };
  }

  async function startDataWorker(): Promise<DataWorker> {
    const w = spawnDataWorker();
    await waitFor(async () => w.out().includes('data worker polling'), { timeoutMs: 60_000, what: 'the data worker to start' });
    return w;
  }

  const sourcesFile = () => path.join(dir, 'sources.json');

  const pendingLookups = async (tenantId: string) =>
    (
      await h.runtime.pool.query(
        "SELECT id, offers, params_enc, task_token_enc FROM remote_lookups WHERE tenant_id = $1 AND status = 'pending' AND deadline > now()",
        [tenantId],
      )
    ).rows;

  before(async () => {
    h = await createHarness();
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-data-worker-'));
    crm = await createPgCrm({
      orders: [{ order_id: '4711', status: 'out for delivery', tracking_number: 'DPD4711', customer_phone: '+15550009999' }],
    });
    inventory = await fakeInventory(INVENTORY_KEY).start();
    a = await h.createTenant(undefined, { fallback_message: FALLBACK });
    b = await h.createTenant(undefined, { fallback_message: FALLBACK });
    // The worker's own file: hosts, users, passwords and keys stay in the tenant's network.
    await writeFile(
      sourcesFile(),
      JSON.stringify({
        data_sources: [
          { id: 'primary_crm', name: 'CRM', type: 'postgresql', connection: crm.connection, queries: QUERIES },
          {
            id: 'inventory_api',
            name: 'Inventory',
            type: 'rest_api',
            connection: {
              base_url: `${inventory.url}/api`,
              api_key: INVENTORY_KEY,
              headers: { Authorization: 'Bearer {api_key}' },
              timeout_ms: STOCK_TIMEOUT_MS,
            },
            endpoints: { check_stock: '/products/{sku}/stock' },
          },
        ],
      }),
    );
    // Parley knows the sources' ids and query names only (and the attempt time it waits).
    const put = await h.request('PUT', `/routes/tenants/${a.id}/data-sources`, {
      key: a.key,
      body: {
        data_sources: [
          { id: 'primary_crm', name: 'CRM (in our network)', type: 'postgresql', served_by: 'tenant_worker', queries: QUERIES },
          {
            id: 'inventory_api',
            name: 'Inventory (in our network)',
            type: 'rest_api',
            served_by: 'tenant_worker',
            connection: { timeout_ms: STOCK_TIMEOUT_MS },
            endpoints: { check_stock: '/products/{sku}/stock' },
          },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const intents = await h.request('PUT', `/routes/tenants/${a.id}/intents`, {
      key: a.key,
      body: {
        intents: [
          {
            id: 'order_status',
            patterns: ['order #?(?<order_id>\\d+)'],
            data_source: 'primary_crm',
            query: 'order_status',
            params: ['order_id'],
            reply_template: 'Order #{{order_id}}: {{status}}',
          },
          {
            id: 'stock',
            patterns: ['stock (?<sku>SKU-\\d+)'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: '{{name}}: {{quantity}} in stock',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    aWorkerKey = await issueKey(a, ['data_worker']);
    bWorkerKey = await issueKey(b, ['data_worker']);
  });

  after(async () => {
    for (const child of running) await killHard(child);
    await h?.close();
    await crm?.drop();
    await inventory?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers a customer from the tenant's worker; Parley holds no credentials and no lookup data afterwards", async () => {
    const worker = await startDataWorker();
    const r = await h.ask(a, 'status of order #4711?');
    assert.equal(r.text, 'Order #4711: out for delivery');
    const [row] = (
      await h.runtime.pool.query("SELECT credentials_enc, config FROM data_sources WHERE id = 'primary_crm' AND tenant_id = $1", [a.id])
    ).rows;
    assert.equal(row.credentials_enc, null);
    assert.deepEqual(row.config.connection, {});
    const [log] = (await h.runtime.pool.query('SELECT via, outcome FROM data_access_logs WHERE tenant_id = $1', [a.id])).rows;
    assert.deepEqual(log, { via: 'tenant_worker', outcome: 'ok' });
    // Settled: the task token and parameters are gone from Parley's database.
    const lookups = (
      await h.runtime.pool.query('SELECT status, offers, task_token_enc, params_enc FROM remote_lookups WHERE tenant_id = $1', [a.id])
    ).rows;
    assert.deepEqual(lookups, [{ status: 'completed', offers: 1, task_token_enc: null, params_enc: null }]);

    const test = await h.request('POST', `/routes/tenants/${a.id}/data-sources/primary_crm/test`, { key: a.key });
    assert.equal(test.status, 200);
    assert.equal(test.body.ok, true, JSON.stringify(test.body));
    assert.equal(test.body.via, 'tenant_worker');

    worker.child.kill('SIGTERM');
    await once(worker.child, 'exit');
  });

  it('refuses a key without the data_worker scope (403), and another tenant’s key (404)', async () => {
    // No worker runs: the customer's lookup waits in remote_lookups, encrypted.
    const from = uniquePhone();
    const sent = await h.inbound(a.key, { from, message: 'stock SKU-789 please', tenant_id: a.id, timestamp: new Date().toISOString() });
    assert.equal(sent.status, 202);
    const [pending] = await waitFor(async () => {
      const rows = await pendingLookups(a.id);
      return rows.length > 0 && rows;
    });
    assert.match(pending.params_enc, /^v2\./);
    assert.match(pending.task_token_enc, /^v2\./);
    assert.ok(!pending.params_enc.includes('SKU-789'));
    const answer = { ok: true, rows: [{ name: 'Blue kettle', quantity: 99 }], source_ms: 3 };

    // Every other scope, even all of them together, is not data_worker.
    const otherScopes = await issueKey(a, ['admin', 'messages', 'queue', 'read']);
    const next = await h.request('GET', `/routes/tenants/${a.id}/data-worker/next`, { key: otherScopes });
    assert.equal(next.status, 403);
    assert.equal(next.body.error.code, 'FORBIDDEN');
    const forbidden = await h.request('POST', `/routes/tenants/${a.id}/data-worker/lookups/${pending.id}/result`, {
      key: otherScopes,
      body: answer,
    });
    assert.equal(forbidden.status, 403);

    // Tenant B's data worker: neither A's queue nor A's lookup by id under its own tenant.
    const bOnA = await h.request('GET', `/routes/tenants/${a.id}/data-worker/next`, { key: bWorkerKey });
    assert.equal(bOnA.status, 404);
    const bOwn = await h.request('GET', `/routes/tenants/${b.id}/data-worker/next`, { key: bWorkerKey });
    assert.equal(bOwn.status, 204);
    for (const url of [
      `/routes/tenants/${a.id}/data-worker/lookups/${pending.id}/result`,
      `/routes/tenants/${b.id}/data-worker/lookups/${pending.id}/result`,
    ]) {
      const res = await h.request('POST', url, { key: bWorkerKey, body: answer });
      assert.equal(res.status, 404, url);
    }
    const bLease = await h.request('POST', `/routes/tenants/${b.id}/data-worker/lookups/${pending.id}/lease`, { key: bWorkerKey });
    assert.equal(bLease.status, 404);
    assert.equal(bLease.body.error.code, 'LOOKUP_NOT_FOUND');
    assert.equal((await pendingLookups(a.id)).length, 1, "B's attempts changed nothing");

    // A's data_worker key pulls and answers it; the customer gets that answer, once.
    const offer = await h.request('GET', `/routes/tenants/${a.id}/data-worker/next?wait_s=5`, { key: aWorkerKey });
    assert.equal(offer.status, 200, JSON.stringify(offer.body));
    assert.equal(offer.body.lookup_id, pending.id);
    assert.deepEqual(
      { kind: offer.body.kind, data_source: offer.body.data_source, query: offer.body.query, params: offer.body.params },
      { kind: 'lookup', data_source: 'inventory_api', query: 'check_stock', params: { sku: 'SKU-789' } },
    );
    const leased = await h.request('GET', `/routes/tenants/${a.id}/data-worker/next`, { key: aWorkerKey });
    assert.equal(leased.status, 204, 'a leased lookup is not offered twice');
    const done = await h.request('POST', `/routes/tenants/${a.id}/data-worker/lookups/${pending.id}/result`, {
      key: aWorkerKey,
      body: answer,
    });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.status, 'completed');
    const again = await h.request('POST', `/routes/tenants/${a.id}/data-worker/lookups/${pending.id}/result`, {
      key: aWorkerKey,
      body: answer,
    });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'LOOKUP_ALREADY_ANSWERED');
    const [reply] = await waitFor(async () => {
      const m = await h.sandbox(a.id, a.key, from);
      return m.length > 0 && m;
    });
    assert.equal(reply.text, 'Blue kettle: 99 in stock');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await h.sandbox(a.id, a.key, from)).length, 1);
  });

  it('refuses a malformed answer with a 400 naming the field', async () => {
    const res = await h.request('POST', `/routes/tenants/${a.id}/data-worker/lookups/${randomUUID()}/result`, {
      key: aWorkerKey,
      body: { ok: false, error: { code: 'teapot', message: 'x' } },
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /error\.code/);
  });

  it('a worker whose key lacks the scope stops at start with the reason', async () => {
    const w = spawnDataWorker(await issueKey(a, ['read']));
    const [code] = (await once(w.child, 'exit')) as [number];
    assert.equal(code, 1);
    assert.match(w.out(), /FORBIDDEN/);
  });

  it('falls back when no data worker runs; the lookup is not offered after its deadline', async () => {
    const r = await h.ask(a, 'order 4711');
    assert.equal(r.text, FALLBACK);
    assert.ok(r.ms < 10_000, `fallback after ${r.ms} ms`);
    const logs = (await h.runtime.pool.query("SELECT error, via FROM data_access_logs WHERE tenant_id = $1 AND outcome = 'error'", [a.id]))
      .rows;
    assert.equal(logs.length, 1);
    assert.match(logs[0].error, /timed out/);
    assert.equal(logs[0].via, 'tenant_worker');
    const late = await h.request('GET', `/routes/tenants/${a.id}/data-worker/next`, { key: aWorkerKey });
    assert.equal(late.status, 204);
    const [expired] = (
      await h.runtime.pool.query(
        "SELECT id FROM remote_lookups WHERE tenant_id = $1 AND status = 'pending' ORDER BY created_at DESC LIMIT 1",
        [a.id],
      )
    ).rows;
    const answer = await h.request('POST', `/routes/tenants/${a.id}/data-worker/lookups/${expired.id}/result`, {
      key: aWorkerKey,
      body: { ok: true, rows: [{ status: 'late' }], source_ms: 1 },
    });
    assert.equal(answer.status, 409);
    assert.equal(answer.body.error.code, 'LOOKUP_EXPIRED');
  });

  it('a worker killed mid-lookup: its lease runs out, another worker answers, once', async () => {
    const workers = [await startDataWorker(), await startDataWorker()];
    inventory.slowMs = 60_000;
    inventory.setMode('slow');
    const [{ since }] = (await h.runtime.pool.query('SELECT now() AS since')).rows;
    const from = uniquePhone();
    const sent = await h.inbound(a.key, { from, message: 'stock SKU-789?', tenant_id: a.id, timestamp: new Date().toISOString() });
    assert.equal(sent.status, 202);
    await waitFor(async () => inventory.seen.length === 1, { what: 'the first worker to call the source' });
    const holder = await waitFor(async () => workers.find((w) => w.leased().length > 0), { what: 'the lease in a worker log' });
    const other = workers.find((w) => w !== holder)!;
    const [lookupId] = holder.leased();
    // From now on the source answers at once; the first call never returns to a living worker.
    inventory.setMode('ok');
    await killHard(holder.child);
    const [reply] = await waitFor(
      async () => {
        const m = await h.sandbox(a.id, a.key, from);
        return m.length > 0 && m;
      },
      { timeoutMs: 15_000, what: 'the reply' },
    );
    assert.equal(reply.text, 'Blue kettle: 14 in stock');
    assert.deepEqual(other.leased(), [lookupId]);
    const rows = (await h.runtime.pool.query('SELECT status, offers FROM remote_lookups WHERE id = $1', [lookupId])).rows;
    assert.deepEqual(rows, [{ status: 'completed', offers: 2 }]);
    // One attempt, answered once: no retry was needed and no second reply goes out.
    const attempts = (
      await h.runtime.pool.query('SELECT count(*)::int AS n FROM remote_lookups WHERE tenant_id = $1 AND created_at >= $2', [a.id, since])
    ).rows;
    assert.equal(attempts[0].n, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await h.sandbox(a.id, a.key, from)).length, 1);
  });
});
