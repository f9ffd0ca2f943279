import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const BACKLOG = 2000;

/** Inbound signals of a workflow, with how many messages each carried (payloads read through the harness's own client). */
async function inboundSignals(h: Harness, address: string, workflowId: string): Promise<number> {
  const { EventType } = proto.temporal.api.enums.v1;
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    let signals = 0;
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      const { events } = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      signals += (events ?? []).filter(
        (e) =>
          e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED &&
          e.workflowExecutionSignaledEventAttributes?.signalName === 'inbound',
      ).length;
    }
    return signals;
  } finally {
    await connection.close();
  }
}

describe('outbox relay: a long backlog', () => {
  let h: Harness;
  after(() => h?.close());

  it(`${BACKLOG} messages queued for one conversation are signalled in bounded batches and all answered once, in order`, async () => {
    h = await createHarness({ env: { RELAY_SWEEP_MS: '200' } });
    const tenant = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
      key: tenant.key,
      body: { entries: [{ title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' }] },
    });
    // The relay stands still, as during a Temporal outage: every message waits in the outbox.
    await h.api.relay.stop();
    const from = uniquePhone();
    const ids: string[] = [];
    const filler = 'x'.repeat(300);
    for (let i = 0; i < BACKLOG; i++) {
      const r = await h.inbound(tenant.key, {
        from,
        message: `message ${i} ${filler}`,
        tenant_id: tenant.id,
        timestamp: new Date().toISOString(),
      });
      assert.equal(r.status, 202);
      ids.push(r.body.message_id);
    }
    const conversation = await h.runtime.pool.query<{ workflow_id: string; n: number }>(
      `SELECT c.workflow_id, (SELECT count(*)::int FROM outbox o WHERE o.conversation_id = c.id AND o.delivered_at IS NULL) AS n
         FROM conversations c JOIN messages m ON m.conversation_id = c.id WHERE m.id = $1`,
      [ids[0]],
    );
    assert.equal(conversation.rows[0].n, BACKLOG);

    h.api.relay.start();
    const answered = await waitFor(
      async () => {
        const replies = await h.sandbox(tenant.id, tenant.key, from);
        const all = replies.flatMap((m: { in_reply_to: string[] }) => m.in_reply_to);
        return all.length >= BACKLOG && all;
      },
      { timeoutMs: 180_000, what: `replies covering all ${BACKLOG} messages` },
    );
    assert.deepEqual(answered, ids, 'every message answered once, in the order it was accepted');
    const left = await h.runtime.pool.query('SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL');
    assert.equal(left.rows[0].n, 0);
    const signals = await inboundSignals(h, h.config.TEMPORAL_ADDRESS!, conversation.rows[0].workflow_id);
    assert.ok(signals >= BACKLOG / 100, `the backlog went in batches of at most 100 messages (${signals} signals)`);
  });
});
