import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { createWorkerFor } from '../worker/create-worker.js';
import type { Client } from '@temporalio/client';
import {
  createHarness,
  createTemporalClient,
  testKeyring,
  testTemporalAddress,
  uniquePhone,
  waitFor,
  type Harness,
} from './helpers/harness.js';
import { FakeProvider, metaChannelBody } from './helpers/fake-providers.js';

/**
 * A TCP relay to the Temporal server that can cut a worker off: its heartbeats stop arriving
 * while the worker itself runs on, reaching Postgres and the provider as before.
 */
class Partition {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private readonly server = net.createServer((client) => {
    if (this.cut) return void client.destroy();
    const [host, port] = testTemporalAddress().split(':');
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  address = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Drops every connection and refuses new ones: polls end on the server, so no task is lost to the cut worker. */
  isolate(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.cut = false;
  }

  close(): Promise<void> {
    this.isolate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Issue 17: a campaign page attempt that misses its heartbeat is retried by Temporal while the
 * first attempt still runs. Both attempts see the contacts still `sending`; the fence lets only
 * one of them send each, so every contact gets one message (counted at the provider).
 */
describe('pulse: a page attempt cut off from Temporal while it sends', () => {
  let h: Harness;
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  let partition: Partition;
  let cutOff: { worker: Worker; connection: NativeConnection; done: Promise<void> } | undefined;
  let temporal: Client;

  before(async () => {
    await meta.start();
    partition = await new Partition().start();
    h = await createHarness({ worker: false });
    temporal = await createTemporalClient({ address: testTemporalAddress(), namespace: 'default', keyring: testKeyring() });
  });
  after(async () => {
    await temporal.connection.close();
    if (cutOff) {
      partition.heal();
      if (cutOff.worker.getState() === 'RUNNING') cutOff.worker.shutdown();
      await cutOff.done.catch(() => undefined);
      await cutOff.connection.close();
    }
    await partition.close();
    await h.close();
    await meta.close();
  });

  it('the retry and the stale attempt together message every contact exactly once', async () => {
    const tenant = await h.createTenant();
    // The number's send rate (5/s), not the campaign's, paces this run: a page lasts about 24 s,
    // much longer than the 15 s heartbeat timeout, so the first attempt is still sending when retried.
    const channel = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
      key: tenant.key,
      body: metaChannelBody(meta.url, { rate_per_second: 5 }),
    });
    assert.equal(channel.status, 201, JSON.stringify(channel.body));
    const n = 120;
    const phones = Array.from({ length: n }, () => uniquePhone());
    const seeded = await h.request('PUT', `/routes/tenants/${tenant.id}/contacts`, {
      key: tenant.key,
      body: { contacts: phones.map((phone, i) => ({ phone, name: `S${i}`, tags: [], opted_in: true })) },
    });
    assert.equal(seeded.status, 200, JSON.stringify(seeded.body));
    const created = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns`, {
      key: tenant.key,
      body: {
        name: 'Fenced',
        cron: '0 0 1 1 *',
        timezone: 'UTC',
        message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
        rate_per_second: 50,
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const campaignId = created.body.id as string;

    // The first attempt runs on a worker that reaches Temporal through the partition.
    const first = await createWorkerFor(h.config, h.runtime, partition.address);
    cutOff = { ...first, done: first.worker.run() };
    const triggered = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${campaignId}/trigger`, { key: tenant.key });
    assert.equal(triggered.status, 202, JSON.stringify(triggered.body));
    const runId = triggered.body.run_id as string;
    await waitFor(async () => meta.sends().length >= 5, { timeoutMs: 30_000, what: 'the first sends' });

    partition.isolate();
    await h.startWorker();
    const retried = async () =>
      (await temporal.workflow.getHandle(runId).describe()).raw.pendingActivities?.some(
        (a) => a.activityType?.name === 'sendPulsePage' && (a.attempt ?? 0) >= 2,
      );
    await waitFor(retried, { timeoutMs: 45_000, intervalMs: 200, what: 'Temporal to retry the page attempt' });
    const atRetry = meta.sends().length;
    assert.ok(atRetry < n, `the first attempt had contacts left when the retry began (${atRetry} of ${n} sent)`);

    const run = await waitFor(
      async () => {
        const res = await h.request('GET', `/routes/tenants/${tenant.id}/pulse/campaigns/${campaignId}/runs`, { key: tenant.key });
        const r = (res.body.runs as any[]).find((x) => x.run_id === runId);
        return r && r.status !== 'running' && r;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'the run to finish' },
    );

    const perRecipient = new Map<string, number>();
    for (const r of meta.sends()) perRecipient.set(r.body.to, (perRecipient.get(r.body.to) ?? 0) + 1);
    const twice = [...perRecipient.values()].filter((count) => count > 1).length;
    assert.equal(twice, 0, `${twice} contacts got more than one message`);
    assert.deepEqual([...perRecipient.keys()].sort(), phones.map((p) => p.slice(1)).sort(), 'every contact got a message');
    assert.deepEqual([run.status, run.targeted, run.sent, run.failed], ['completed', n, n, 0]);
    const { rows } = await h.runtime.pool.query<{ fence: number }>('SELECT fence FROM pulse_runs WHERE id = $1', [runId]);
    assert.ok(rows[0].fence >= 2, 'the retry took the run from the first attempt');
    const left = await h.runtime.pool.query(`SELECT count(*)::int AS n FROM campaign_sends WHERE run_id = $1 AND status = 'sending'`, [
      runId,
    ]);
    assert.equal(left.rows[0].n, 0);
  });
});
