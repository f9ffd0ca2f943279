import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { retentionPurgeWorkflow } from '../workflows/retention.js';
import { ensureRetentionSchedule, retentionScheduleId } from '../core/privacy/retention.js';
import { createTemporalClient } from '../core/temporal/client.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

describe('retention: per-tenant period, purged by a Temporal Schedule', () => {
  let h: Harness;
  before(async () => {
    h = await createHarness();
  });
  after(() => h.close());

  async function conversation(t: { id: string; key: string }) {
    const to = uniquePhone();
    const res = await h.inbound(t.key, { from: to, message: 'hello there', tenant_id: t.id, timestamp: new Date().toISOString() });
    await waitFor(async () => (await h.sandbox(t.id, t.key, to)).length > 0, { timeoutMs: 30_000 });
    return res.body.conversation_id as string;
  }
  const age = (sql: string, params: unknown[]) => h.runtime.pool.query(sql, params);
  const count = async (sql: string, params: unknown[]) => (await h.runtime.pool.query<{ n: number }>(sql, params)).rows[0].n;

  it('validates the period', async () => {
    const t = await h.createTenant();
    for (const days of [0, -1, 1.5, '30']) {
      const res = await h.request('PUT', `/routes/tenants/${t.id}/retention`, { key: t.key, body: { days } });
      assert.equal(res.status, 400, `days=${JSON.stringify(days)}`);
      assert.match(res.body.error.message, /body\.days/);
    }
  });

  it('the purge workflow deletes old messages and closed conversations, only for tenants with a period', async () => {
    const keep = await h.createTenant();
    const purge = await h.createTenant();
    const set = await h.request('PUT', `/routes/tenants/${purge.id}/retention`, { key: purge.key, body: { days: 30 } });
    assert.deepEqual(set.body, { tenant_id: purge.id, days: 30 });

    const oldClosed = await conversation(purge);
    const openWithOld = await conversation(purge);
    const recent = await conversation(purge);
    const otherTenant = await conversation(keep);
    // Age the data: one conversation closed 40 days ago, another open with 40-day-old messages.
    await age(`UPDATE conversations SET status = 'closed', updated_at = now() - interval '40 days' WHERE id = ANY($1)`, [
      [oldClosed, otherTenant],
    ]);
    await age(`UPDATE messages SET created_at = now() - interval '40 days' WHERE conversation_id = ANY($1)`, [
      [oldClosed, openWithOld, otherTenant],
    ]);
    await age(`UPDATE sandbox_messages SET sent_at = now() - interval '40 days' WHERE tenant_id = ANY($1)`, [[purge.id, keep.id]]);
    // Outbound events: the purged tenant's go with its period; the other tenant's recent ones stay.
    await age(`UPDATE events SET created_at = now() - interval '40 days' WHERE tenant_id = $1`, [purge.id]);
    const oldEvents = await count(`SELECT count(*)::int AS n FROM events WHERE tenant_id = $1`, [purge.id]);
    const otherEvents = await count(`SELECT count(*)::int AS n FROM events WHERE tenant_id = $1`, [keep.id]);
    assert.ok(oldEvents > 0 && otherEvents > 0);

    const counts = await startPurge();
    assert.ok(counts.tenants >= 1);
    assert.equal(counts.conversations, 1);
    assert.equal(counts.messages, 2, "the open conversation's two old messages");
    assert.equal(counts.sandbox_messages, 3);
    assert.equal(counts.events, oldEvents);
    assert.equal(await count(`SELECT count(*)::int AS n FROM events WHERE tenant_id = $1`, [keep.id]), otherEvents);

    assert.equal(await count(`SELECT count(*)::int AS n FROM conversations WHERE id = $1`, [oldClosed]), 0);
    assert.equal(await count(`SELECT count(*)::int AS n FROM conversations WHERE id = $1`, [openWithOld]), 1, 'open conversations stay');
    assert.equal(await count(`SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1`, [openWithOld]), 0);
    assert.equal(await count(`SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1`, [recent]), 2, 'recent messages stay');
    assert.equal(
      await count(`SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1`, [otherTenant]),
      2,
      'a tenant without a period keeps everything',
    );
    assert.equal(await count(`SELECT count(*)::int AS n FROM conversations WHERE id = $1`, [otherTenant]), 1);

    const again = await startPurge();
    assert.deepEqual(
      { ...again, tenants: 0 },
      { tenants: 0, messages: 0, conversations: 0, sandbox_messages: 0, jobs: 0, events: 0 },
      'a second run finds nothing',
    );
  });

  it('the API creates the retention Schedule at start-up, idempotently', async () => {
    const client = await clientOf();
    after(() => client.connection.close());
    const desc = await client.schedule.getHandle(retentionScheduleId(h.config.TEMPORAL_TASK_QUEUE)).describe();
    assert.equal(desc.action.type, 'startWorkflow');
    assert.equal((desc.action as { workflowType: string }).workflowType, 'retentionPurgeWorkflow');
    await ensureRetentionSchedule(client, { taskQueue: h.config.TEMPORAL_TASK_QUEUE, every: '1h' });
    await client.schedule.getHandle(retentionScheduleId(h.config.TEMPORAL_TASK_QUEUE)).delete();
  });

  async function clientOf() {
    return createTemporalClient({
      address: h.config.TEMPORAL_ADDRESS!,
      namespace: h.config.TEMPORAL_NAMESPACE,
      keyring: h.runtime.keyring,
    });
  }

  /** Runs the purge as the Schedule does: the workflow on the worker's task queue. */
  async function startPurge() {
    const client = await clientOf();
    try {
      return await client.workflow.execute(retentionPurgeWorkflow, {
        taskQueue: h.config.TEMPORAL_TASK_QUEUE,
        workflowId: `purge-test-${Date.now()}-${Math.random()}`,
      });
    } finally {
      await client.connection.close();
    }
  }
});
