import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const KNOWLEDGE = [
  { title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' },
  { title: 'Shipping', content: 'Orders ship within 2 business days; delivery takes 3-5 days.' },
  { title: 'Returns', content: 'Returns are free within 30 days with the receipt.' },
];

describe('conversation: inbound message to reply', () => {
  let h: Harness;
  let tenant: { id: string; key: string };

  before(async () => {
    h = await createHarness();
    tenant = await h.createTenant(undefined, { fallback_message: 'A human will get back to you.' });
    const res = await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, { key: tenant.key, body: { entries: KNOWLEDGE } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { count: 3 });
  });
  after(() => h.close());

  it('answers from the knowledge base through the sandbox', async () => {
    const to = uniquePhone();
    const res = await h.inbound(tenant.key, {
      from: to,
      message: 'When are you open?',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    assert.equal(res.status, 202);
    assert.equal(res.body.duplicate, false);
    const sent = await waitFor(async () => {
      const m = await h.sandbox(tenant.id, tenant.key, to);
      return m.length > 0 && m;
    });
    assert.equal(sent.length, 1);
    assert.equal(sent[0].text, KNOWLEDGE[0].content);
    assert.deepEqual(sent[0].in_reply_to, [res.body.message_id]);

    const conv = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${res.body.conversation_id}`, { key: tenant.key });
    assert.equal(conv.status, 200);
    assert.equal(conv.body.status, 'open');
    assert.equal(conv.body.contact_phone, to);
    assert.ok(!conv.body.workflow_id.includes(to.slice(1)), 'no phone number in the workflow id');
    const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
    assert.match(conv.body.workflow_id, new RegExp(`^conversation/${tenant.id}/${uuid}/${uuid}$`), 'conversationWorkflowId() shape');
    assert.deepEqual(
      conv.body.messages.map((m: any) => [m.direction, m.text, m.status]),
      [
        ['inbound', 'When are you open?', 'answered'],
        ['outbound', KNOWLEDGE[0].content, 'sent'],
      ],
    );
  });

  it('falls back when the knowledge base has no answer', async () => {
    const to = uniquePhone();
    await h.inbound(tenant.key, { from: to, message: 'Do you sell unicorns?', tenant_id: tenant.id, timestamp: new Date().toISOString() });
    const sent = await waitFor(async () => {
      const m = await h.sandbox(tenant.id, tenant.key, to);
      return m.length > 0 && m;
    });
    assert.equal(sent[0].text, 'A human will get back to you.');
  });

  it('replies exactly once when the same webhook arrives 5 times concurrently', async () => {
    const to = uniquePhone();
    const body = { from: to, message: 'How long does shipping take?', tenant_id: tenant.id, timestamp: new Date().toISOString() };
    const results = await Promise.all(Array.from({ length: 5 }, () => h.inbound(tenant.key, body)));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 202]);
    assert.equal(new Set(results.map((r) => r.body.message_id)).size, 1);
    assert.equal(results.filter((r) => r.body.duplicate === false).length, 1);
    await waitFor(async () => (await h.sandbox(tenant.id, tenant.key, to)).length > 0);
    // Give a second reply every chance to appear before asserting there is none.
    await delay(1500);
    const sent = await h.sandbox(tenant.id, tenant.key, to);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].text, KNOWLEDGE[1].content);
    // A late re-delivery (explicit message id this time) is still a duplicate.
    const again = await h.inbound(tenant.key, body);
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
  });

  it('de-duplicates by message_id when the provider gives one', async () => {
    const to = uniquePhone();
    const first = await h.inbound(tenant.key, {
      from: to,
      message: 'returns?',
      tenant_id: tenant.id,
      timestamp: '2025-09-10T10:30:00Z',
      message_id: 'wamid.A1',
    });
    const second = await h.inbound(tenant.key, {
      from: to,
      message: 'returns?',
      tenant_id: tenant.id,
      timestamp: '2025-09-10T10:31:00Z',
      message_id: 'wamid.A1',
    });
    assert.equal(first.status, 202);
    assert.equal(second.status, 200);
    assert.equal(second.body.message_id, first.body.message_id);
  });

  it('answers a burst of 3 messages as one turn, in order', async () => {
    const burst = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${burst.id}/knowledge`, { key: burst.key, body: { entries: KNOWLEDGE } });
    const set = await h.request('PATCH', `/routes/tenants/${burst.id}/settings`, { key: burst.key, body: { debounce_ms: 1500 } });
    assert.equal(set.status, 200);
    const to = uniquePhone();
    const texts = ['Hi there', 'I bought something last week', 'can I return it?'];
    const ids: string[] = [];
    for (const message of texts) {
      const r = await h.inbound(burst.key, { from: to, message, tenant_id: burst.id, timestamp: new Date().toISOString() });
      assert.equal(r.status, 202);
      ids.push(r.body.message_id);
      await delay(100);
    }
    const sent = await waitFor(async () => {
      const m = await h.sandbox(burst.id, burst.key, to);
      return m.length > 0 && m;
    });
    await delay(2000);
    const all = await h.sandbox(burst.id, burst.key, to);
    assert.equal(all.length, 1, 'one reply for the whole burst');
    assert.deepEqual(sent[0].in_reply_to, ids, 'the turn holds the three messages in order');
    assert.equal(sent[0].text, KNOWLEDGE[2].content);
  });
});
