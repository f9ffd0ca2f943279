import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { stateQuery } from '../contracts/conversation.js';
import { createHarness, createTemporalClient, testKeyring, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

describe('conversation lifecycle', () => {
  let h: Harness;
  let client: Client;
  let tenant: { id: string; key: string };

  before(async () => {
    h = await createHarness({ env: { CONVERSATION_WINDOW_S: '3', CONVERSATION_TURNS_PER_RUN: '2' } });
    client = await createTemporalClient({ address: h.config.TEMPORAL_ADDRESS!, namespace: 'default', keyring: testKeyring() });
    tenant = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
      key: tenant.key,
      body: { entries: [{ title: 'Hours', content: 'We are open 9 to 5.' }] },
    });
  });
  after(async () => {
    await client.connection.close();
    await h.close();
  });

  const say = async (to: string, message: string, expectReplies: number) => {
    const r = await h.inbound(tenant.key, { from: to, message, tenant_id: tenant.id, timestamp: new Date().toISOString() });
    assert.equal(r.status, 202);
    await waitFor(async () => (await h.sandbox(tenant.id, tenant.key, to)).length === expectReplies, { what: `reply ${expectReplies}` });
    return r.body.conversation_id as string;
  };

  it('continues as new after the configured turns and carries the memory over', async () => {
    const to = uniquePhone();
    const conversationId = await say(to, 'hello', 1);
    await say(to, 'when are you open?', 2);
    await say(to, 'and on saturday?', 3);
    const conv = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${conversationId}`, { key: tenant.key });
    const handle = client.workflow.getHandle(conv.body.workflow_id);
    const state = await handle.query(stateQuery);
    assert.equal(state.turns, 3);
    assert.deepEqual(
      state.memory.filter((e) => e.role === 'customer').map((e) => e.text),
      ['hello', 'when are you open?', 'and on saturday?'],
      'memory survives continue-as-new',
    );
    const runs = [];
    for await (const w of client.workflow.list({ query: `WorkflowId = "${conv.body.workflow_id}"` })) runs.push(w.status.name);
    assert.ok(runs.includes('CONTINUED_AS_NEW'), `runs: ${runs.join(',')}`);
  });

  it('closes after the customer-service window and reopens on the next message', async () => {
    const to = uniquePhone();
    const conversationId = await say(to, 'hello', 1);
    const url = `/routes/tenants/${tenant.id}/conversations/${conversationId}`;
    await waitFor(async () => (await h.request('GET', url, { key: tenant.key })).body.status === 'closed', {
      timeoutMs: 20_000,
      what: 'the conversation to close',
    });
    const workflowId = (await h.request('GET', url, { key: tenant.key })).body.workflow_id;
    assert.equal((await client.workflow.getHandle(workflowId).describe()).status.name, 'COMPLETED');
    await say(to, 'when are you open?', 2);
    const reopened = await h.request('GET', url, { key: tenant.key });
    assert.equal(reopened.body.status, 'open');
    assert.equal((await client.workflow.getHandle(workflowId).describe()).status.name, 'RUNNING');
  });
});
