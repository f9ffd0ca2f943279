import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { createHarness, testKeyring, testTemporalAddress, waitFor, type Harness } from './helpers/harness.js';
import { createPgCrm, type Crm } from './helpers/tenant-crm.js';
import { DataWorkerCodec, EncryptionCodec } from '../core/temporal/codec.js';

const FALLBACK = 'A human will get back to you.';
const QUERIES = { order_status: 'SELECT status, tracking_number FROM orders WHERE order_id = $1' };

describe("data engine: the tenant's own data worker", () => {
  let h: Harness;
  let crm: Crm;
  let tenant: { id: string; key: string };
  let dir: string;
  let worker: ChildProcess | undefined;

  const ask = (message: string) => h.ask(tenant, message);

  /** `npm run data-worker -- --tenant <id> --sources <file>` as a separate process without Parley's database. */
  async function startDataWorker(): Promise<ChildProcess> {
    const file = path.join(dir, 'sources.json');
    await writeFile(
      file,
      JSON.stringify({
        data_sources: [{ id: 'primary_crm', name: 'CRM', type: 'postgresql', connection: crm.connection, queries: QUERIES }],
      }),
    );
    const key = await h.request('POST', `/routes/tenants/${tenant.id}/data-worker-key`, { key: tenant.key });
    assert.equal(key.status, 200);
    assert.equal(key.body.task_queue, `data-${tenant.id}`);
    // Neither Parley's database nor its encryption key: only the tenant's data-worker key.
    const { DATABASE_URL: _d, TEST_DATABASE_URL: _t, PARLEY_ENCRYPTION_KEY: _k, ...env } = process.env;
    const child = spawn(process.execPath, ['--import', 'tsx', 'worker/data-worker.ts', '--tenant', tenant.id, '--sources', file], {
      env: { ...env, TEMPORAL_ADDRESS: testTemporalAddress(), PARLEY_DATA_WORKER_KEY: key.body.data_worker_key },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(async () => out.includes('polling'), { timeoutMs: 60_000, what: 'the data worker to start' });
    return child;
  }

  before(async () => {
    h = await createHarness();
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-data-worker-'));
    crm = await createPgCrm({
      orders: [{ order_id: '4711', status: 'out for delivery', tracking_number: 'DPD4711', customer_phone: '+15550009999' }],
    });
    tenant = await h.createTenant(undefined, { fallback_message: FALLBACK });
    // Parley knows the source's id and query names only: no host, no credentials.
    const put = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
      key: tenant.key,
      body: {
        data_sources: [
          { id: 'primary_crm', name: 'CRM (in our network)', type: 'postgresql', served_by: 'tenant_worker', queries: QUERIES },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const intents = await h.request('PUT', `/routes/tenants/${tenant.id}/intents`, {
      key: tenant.key,
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
        ],
      },
    });
    assert.equal(intents.status, 200);
    worker = await startDataWorker();
  });

  after(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await once(worker, 'exit');
    }
    await h?.close();
    await crm?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers through the tenant's worker; Parley's database holds no credentials for the source", async () => {
    const r = await ask('status of order #4711?');
    assert.equal(r.text, 'Order #4711: out for delivery');
    const [row] = (await h.runtime.pool.query('SELECT credentials_enc, config FROM data_sources WHERE tenant_id = $1', [tenant.id])).rows;
    assert.equal(row.credentials_enc, null);
    assert.deepEqual(row.config.connection, {});
    const [log] = (await h.runtime.pool.query('SELECT via, outcome FROM data_access_logs WHERE tenant_id = $1', [tenant.id])).rows;
    assert.deepEqual(log, { via: 'tenant_worker', outcome: 'ok' });
  });

  it("tests connectivity on the tenant's worker", async () => {
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/data-sources/primary_crm/test`, { key: tenant.key });
    assert.equal(res.status, 200);
    assert.equal(res.body.ok, true, JSON.stringify(res.body));
    assert.equal(res.body.via, 'tenant_worker');
  });

  it("falls back when the tenant's worker is gone: the shared worker cannot answer for it", async () => {
    worker!.kill('SIGTERM');
    await once(worker!, 'exit');
    const r = await ask('order 4711');
    assert.equal(r.text, FALLBACK);
    assert.ok(r.ms < 10_000, `fallback after ${r.ms} ms`);
    const logs = (await h.runtime.pool.query("SELECT error FROM data_access_logs WHERE tenant_id = $1 AND outcome = 'error'", [tenant.id]))
      .rows;
    assert.equal(logs.length, 1);
    assert.match(logs[0].error, /timed out/);
  });

  it("seals a data worker's payloads with its tenant's key only", async () => {
    const keyring = testKeyring();
    const parley = new EncryptionCodec(keyring);
    const payload = {
      metadata: { encoding: new TextEncoder().encode('json/plain') },
      data: new TextEncoder().encode('{"order_id":"4711"}'),
    };
    const context = (t: string) => ({ type: 'activity' as const, namespace: 'default', activityId: `data-worker/${t}/x`, isLocal: false });
    const [forA] = await parley.encode([payload], context('tenant-a'));
    const [forB] = await parley.encode([payload], context('tenant-b'));
    const workerA = new DataWorkerCodec('tenant-a', keyring.dataWorkerKey('tenant-a'));
    const text = (p: { data?: Uint8Array | null }) => Buffer.from(p.data!).toString();
    assert.equal(text((await workerA.decode([forA], context('tenant-a')))[0]), '{"order_id":"4711"}');
    await assert.rejects(workerA.decode([forB], context('tenant-a')), /not this data worker's/);
    // A worker given the wrong key cannot open its own tenant's payloads either.
    await assert.rejects(new DataWorkerCodec('tenant-b', keyring.dataWorkerKey('tenant-a')).decode([forB], context('tenant-b')));
    // Ordinary payloads stay under Parley's keys, which the data worker does not have.
    const [ordinary] = await parley.encode([payload]);
    await assert.rejects(workerA.decode([ordinary], context('tenant-a')));
    // And Parley opens what the worker sends back.
    const [reply] = await workerA.encode([payload]);
    assert.equal(text((await parley.decode([reply], context('tenant-a')))[0]), '{"order_id":"4711"}');
  });
});
