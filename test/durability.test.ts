import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { killHard, spawnWorker } from './helpers/processes.js';
import { freePort } from '../scripts/lib/ports.js';
import { startTestTemporal } from '../scripts/lib/test-env.js';

const KNOWLEDGE = [{ title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' }];

async function setupTenant(h: Harness) {
  const tenant = await h.createTenant();
  await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, { key: tenant.key, body: { entries: KNOWLEDGE } });
  return tenant;
}

describe('durability', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('a worker killed in the middle of a turn sends the reply exactly once after restart', async () => {
    const h = await createHarness({ worker: false });
    cleanups.push(() => h.close());
    const tenant = await setupTenant(h);
    // A slow sandbox send keeps the turn in flight long enough to kill the worker inside it.
    const first = spawnWorker(h, { SANDBOX_LATENCY_MS: '3000' });
    cleanups.push(() => killHard(first));
    const to = uniquePhone();
    const res = await h.inbound(tenant.key, {
      from: to,
      message: 'are you open on monday?',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    assert.equal(res.status, 202);

    await waitFor(
      async () => {
        const r = await h.runtime.pool.query(`SELECT status FROM messages WHERE direction = 'outbound' AND conversation_id = $1`, [
          res.body.conversation_id,
        ]);
        return r.rows[0]?.status === 'sending';
      },
      { timeoutMs: 30_000, what: 'the reply to be in flight' },
    );
    await killHard(first);
    assert.equal((await h.sandbox(tenant.id, tenant.key, to)).length, 0, 'killed before the provider call finished');

    const second = spawnWorker(h);
    cleanups.push(() => killHard(second));
    const sent = await waitFor(
      async () => {
        const m = await h.sandbox(tenant.id, tenant.key, to);
        return m.length > 0 && m;
      },
      { timeoutMs: 60_000, what: 'the reply after the restart' },
    );
    await delay(1500);
    assert.equal((await h.sandbox(tenant.id, tenant.key, to)).length, 1);
    assert.equal(sent[0].text, KNOWLEDGE[0].content);
    const rows = await h.runtime.pool.query(`SELECT status FROM messages WHERE direction = 'outbound' AND conversation_id = $1`, [
      res.body.conversation_id,
    ]);
    assert.deepEqual(rows.rows, [{ status: 'sent' }]);
  });

  it('messages accepted while Temporal is down are answered once, in order, when it returns', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-outage-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const port = await freePort();
    const dbFilename = path.join(dir, 'temporal.db');
    const cli = process.env.TEMPORAL_CLI!;
    let temporal: TestWorkflowEnvironment = await startTestTemporal(cli, { port, dbFilename });
    cleanups.push(() => temporal.teardown());

    const h = await createHarness({ temporalAddress: `127.0.0.1:${port}`, env: { RELAY_SWEEP_MS: '200' } });
    cleanups.push(() => h.close());
    const tenant = await setupTenant(h);
    const warm = uniquePhone();
    await h.inbound(tenant.key, { from: warm, message: 'open?', tenant_id: tenant.id, timestamp: new Date().toISOString() });
    await waitFor(async () => (await h.sandbox(tenant.id, tenant.key, warm)).length === 1, { what: 'warm-up reply' });

    await temporal.teardown();
    const health = await h.request('GET', '/health');
    assert.equal(health.status, 503);
    assert.equal(health.body.temporal, 'unreachable');
    assert.match(health.body.message, /Temporal/);

    const phones = [uniquePhone(), uniquePhone(), uniquePhone()];
    const accepted: { to: string; id: string; at: number }[] = [];
    for (const to of phones) {
      const started = Date.now();
      const r = await h.inbound(tenant.key, {
        from: to,
        message: 'are you open?',
        tenant_id: tenant.id,
        timestamp: new Date().toISOString(),
      });
      assert.equal(r.status, 202, 'accepted while Temporal is down');
      accepted.push({ to, id: r.body.message_id, at: Date.now() - started });
    }
    // Two messages for one contact during the outage: answered in order.
    const chatty = phones[0];
    const later = await h.inbound(tenant.key, {
      from: chatty,
      message: 'what are your opening hours on friday?',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    assert.equal(later.status, 202);
    await delay(1000);
    const pending = await h.runtime.pool.query('SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL');
    assert.equal(pending.rows[0].n, 4, 'all four wait in the outbox');

    temporal = await startTestTemporal(cli, { port, dbFilename });
    for (const to of phones) {
      await waitFor(async () => (await h.sandbox(tenant.id, tenant.key, to)).length > 0, { timeoutMs: 90_000, what: `reply to ${to}` });
    }
    await delay(2000);
    for (const to of phones.slice(1)) assert.equal((await h.sandbox(tenant.id, tenant.key, to)).length, 1);
    const chattyReplies = await h.sandbox(tenant.id, tenant.key, chatty);
    const answered = chattyReplies.flatMap((m: { in_reply_to: string[] }) => m.in_reply_to);
    assert.deepEqual(answered, [accepted[0].id, later.body.message_id], 'both answered once, in order');
    assert.equal((await h.sandbox(tenant.id, tenant.key, warm)).length, 1);
    const left = await h.runtime.pool.query('SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL');
    assert.equal(left.rows[0].n, 0);
  });
});
