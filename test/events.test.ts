import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';
import { handOver } from '../core/conversation/state.js';
import { recordAccess } from '../core/data-engine/store.js';
import { recordDeliveryStatus } from '../core/messaging/delivery-status.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { killHard, spawnWorker } from './helpers/processes.js';
import { WebhookReceiver, type Received } from './helpers/webhook-receiver.js';

type Tenant = { id: string; key: string };

const verify = (secret: string, r: Received) => new Webhook(secret).verify(r.body, r.headers as Record<string, string>);

describe('outbound events (Standard Webhooks)', () => {
  let h: Harness;
  const receivers: WebhookReceiver[] = [];

  before(async () => {
    h = await createHarness({ env: { CONVERSATION_WINDOW_S: '3' } });
  });
  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await h.close();
  });

  const receiver = async () => {
    const rx = new WebhookReceiver();
    const url = await rx.start();
    receivers.push(rx);
    return { rx, url };
  };
  const tenantWithKnowledge = async (): Promise<Tenant> => {
    const t = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${t.id}/knowledge`, {
      key: t.key,
      body: { entries: [{ title: 'Hours', content: 'We are open 9 to 5.' }] },
    });
    return t;
  };
  const endpoints = (t: Tenant) => `/routes/tenants/${t.id}/webhook-endpoints`;
  const createEndpoint = async (t: Tenant, body: Record<string, unknown>) => {
    const res = await h.request('POST', endpoints(t), { key: t.key, body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body as { id: string; secret: string };
  };
  const say = async (t: Tenant, from: string, message: string) => {
    const res = await h.inbound(t.key, { from, message, tenant_id: t.id, timestamp: new Date().toISOString() });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body as { message_id: string; conversation_id: string };
  };

  it('manages endpoints: the secret once, validation, another tenant sees nothing', async () => {
    const t = await h.createTenant();
    const other = await h.createTenant();
    const { url } = await receiver();
    const created = await createEndpoint(t, { url, events: ['message.received'], description: 'CRM' });
    assert.match(created.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);

    const list = await h.request('GET', endpoints(t), { key: t.key });
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.endpoints.map((e: { id: string }) => e.id),
      [created.id],
    );
    assert.equal(JSON.stringify(list.body).includes('whsec_'), false, 'a secret is never listed');

    const patched = await h.request('PATCH', `${endpoints(t)}/${created.id}`, {
      key: t.key,
      body: { events: ['*'], include_message_text: true },
    });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.body.events, ['*']);
    assert.equal(patched.body.include_message_text, true);

    for (const bad of [
      { body: { url: 'https://127.0.0.2:9/hook', events: ['message.sent'] }, code: 'EGRESS_REFUSED' },
      { body: { url: 'https://10.1.2.3/hook', events: ['message.sent'] }, code: 'EGRESS_REFUSED' },
      { body: { url: 'https://[::1]/hook', events: ['message.sent'] }, code: 'EGRESS_REFUSED' },
      { body: { url: 'http://93.184.215.14/hook', events: ['message.sent'] }, code: 'HTTPS_REQUIRED' },
      { body: { url, events: ['message.exploded'] }, code: 'VALIDATION_FAILED' },
      { body: { url, events: [] }, code: 'VALIDATION_FAILED' },
    ]) {
      const res = await h.request('POST', endpoints(t), { key: t.key, body: bad.body });
      assert.equal(res.status, 400, JSON.stringify(bad.body));
      assert.equal(res.body.error.code, bad.code, JSON.stringify(res.body));
    }
    const unchanged = await h.request('GET', endpoints(t), { key: t.key });
    assert.equal(unchanged.body.endpoints.length, 1, 'a refused endpoint changes nothing');

    // Another tenant: its own path does not find the id, and this tenant's path is not its own.
    for (const [method, path] of [
      ['GET', `${endpoints(other)}/${created.id}`],
      ['PATCH', `${endpoints(other)}/${created.id}`],
      ['DELETE', `${endpoints(other)}/${created.id}`],
      ['POST', `${endpoints(other)}/${created.id}/rotate-secret`],
      ['GET', `${endpoints(other)}/${created.id}/deliveries`],
      ['GET', `${endpoints(t)}/${created.id}`],
    ] as const) {
      const res = await h.request(method, path, { key: other.key, body: method === 'PATCH' ? { description: 'x' } : undefined });
      assert.equal(res.status, 404, `${method} ${path}`);
    }

    const narrow = await h.request('POST', `/routes/tenants/${t.id}/keys`, {
      key: 'prl_admin_test_key_0123456789abcdef',
      body: { name: 'r', scopes: ['read'] },
    });
    const forbidden = await h.request('GET', endpoints(t), { key: narrow.body.key });
    assert.equal(forbidden.status, 403);

    assert.equal((await h.request('DELETE', `${endpoints(t)}/${created.id}`, { key: t.key })).status, 204);
    assert.equal((await h.request('GET', `${endpoints(t)}/${created.id}`, { key: t.key })).status, 404);
  });

  it('sends message.received and message.sent once each, signed, text and phone only when asked', async () => {
    const t = await tenantWithKnowledge();
    const plain = await receiver();
    const full = await receiver();
    const a = await createEndpoint(t, { url: plain.url, events: ['message.received', 'message.sent'] });
    const b = await createEndpoint(t, { url: full.url, events: ['*'], include_message_text: true, include_phone: true });
    const from = uniquePhone();
    const { message_id, conversation_id } = await say(t, from, 'When are you open?');

    await waitFor(async () => plain.rx.accepted.length >= 2 && full.rx.ofType('message.sent').length >= 1, {
      what: 'both events',
      timeoutMs: 30_000,
    });
    const received = plain.rx.ofType('message.received');
    assert.equal(received.length, 1);
    const r = received[0];
    verify(a.secret, r);
    assert.throws(() => verify(b.secret, r), 'a wrong secret fails');
    assert.equal(r.headers['webhook-id'], r.json.id);
    assert.deepEqual(Object.keys(r.json).sort(), ['created_at', 'data', 'id', 'tenant_id', 'type']);
    assert.equal(r.json.tenant_id, t.id);
    assert.equal(r.json.data.message_id, message_id);
    assert.equal(r.json.data.conversation_id, conversation_id);
    assert.equal(typeof r.json.data.contact_id, 'string');
    assert.equal(r.json.data.text_redacted, true);
    assert.equal(r.body.includes('open?'), false);
    assert.equal(r.body.includes(from), false);

    const sent = plain.rx.ofType('message.sent');
    assert.equal(sent.length, 1);
    assert.equal(sent[0].json.data.conversation_id, conversation_id);
    assert.notEqual(sent[0].json.data.message_id, message_id);

    const fr = full.rx.ofType('message.received');
    assert.equal(fr.length, 1);
    verify(b.secret, fr[0]);
    assert.equal(fr[0].json.id, r.json.id, 'one event, one id, whichever endpoint');
    assert.equal(fr[0].json.data.text, 'When are you open?');
    assert.equal(fr[0].json.data.phone, from);
    assert.equal(full.rx.ofType('message.sent')[0].json.data.text, 'We are open 9 to 5.');

    // The same webhook again is a duplicate: no second event. The next message's event is the positive signal.
    await h.inbound(t.key, { from, message: 'When are you open?', tenant_id: t.id, timestamp: new Date().toISOString() });
    await say(t, uniquePhone(), 'hello again');
    await waitFor(async () => plain.rx.ofType('message.received').length >= 2, { what: 'the next event' });
    await delay(0);
    const ids = plain.rx.requests.map((x) => x.json.id);
    assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
    const logs = h.logs.text();
    assert.equal(logs.includes(from), false);
    assert.equal(logs.includes('When are you open'), false);
  });

  it('signs with both secrets during a rotation', async () => {
    const t = await h.createTenant();
    const { rx, url } = await receiver();
    const ep = await createEndpoint(t, { url, events: ['message.received'] });
    const rotated = await h.request('POST', `${endpoints(t)}/${ep.id}/rotate-secret`, { key: t.key });
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, ep.secret);
    assert.ok(Date.parse(rotated.body.previous_secret_expires_at) > Date.now() + 23 * 3600_000);
    await say(t, uniquePhone(), 'hi');
    await waitFor(async () => rx.accepted.length === 1, { what: 'a delivery' });
    const r = rx.accepted[0];
    assert.equal(String(r.headers['webhook-signature']).split(' ').length, 2);
    verify(ep.secret, r);
    verify(rotated.body.secret, r);
    assert.throws(() => verify(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, r));
  });

  it('fires contact.opted_out, contact.opted_in and conversation.closed once for their facts', async () => {
    const t = await tenantWithKnowledge();
    const { rx, url } = await receiver();
    await createEndpoint(t, { url, events: ['contact.opted_out', 'contact.opted_in', 'conversation.closed'] });
    const { conversation_id } = await say(t, uniquePhone(), 'hi');
    const conv = await h.request('GET', `/routes/tenants/${t.id}/conversations/${conversation_id}`, { key: t.key });
    const contactId = conv.body.contact_id as string;
    assert.ok(contactId, JSON.stringify(conv.body));
    for (const opted_in of [false, true]) {
      const res = await h.request('PUT', `/routes/tenants/${t.id}/contacts/${contactId}/consent`, {
        key: t.key,
        body: { opted_in, source: 'crm' },
      });
      assert.equal(res.status, 200);
    }
    // The window is 3 s: the conversation closes on its own.
    await waitFor(async () => rx.ofType('conversation.closed').length === 1, { what: 'conversation.closed', timeoutMs: 30_000 });
    assert.equal(rx.ofType('contact.opted_out').length, 1);
    assert.equal(rx.ofType('contact.opted_in').length, 1);
    assert.equal(rx.ofType('contact.opted_out')[0].json.data.contact_id, contactId);
    assert.equal(rx.ofType('conversation.closed')[0].json.data.conversation_id, conversation_id);
  });

  it('fires message.status_updated once per status with the provider error code, and lookup.failed', async () => {
    const t = await tenantWithKnowledge();
    const { rx, url } = await receiver();
    await createEndpoint(t, { url, events: ['message.status_updated', 'lookup.failed'] });
    const { conversation_id } = await say(t, uniquePhone(), 'When are you open?');
    const reply = await waitFor(
      async () => {
        const { rows } = await h.runtime.pool.query<{ id: string; provider_message_id: string }>(
          `SELECT id, provider_message_id FROM messages WHERE conversation_id = $1 AND direction = 'outbound' AND provider_message_id IS NOT NULL`,
          [conversation_id],
        );
        return rows[0];
      },
      { what: 'the sent reply' },
    );
    // Parley stores the provider's id as a keyed hash; the status callback carries the sandbox's own id.
    const { rows: sandboxIds } = await h.runtime.pool.query<{ id: string }>(`SELECT id FROM sandbox_messages WHERE tenant_id = $1`, [t.id]);
    const providerMessageId = sandboxIds
      .map((r) => `sandbox:${r.id}`)
      .find((id) => h.runtime.keyring.blindIndex(id) === reply.provider_message_id);
    assert.ok(providerMessageId, 'the sandbox message of the reply');
    const status = (s: 'delivered' | 'read' | 'failed', errorCode?: string) =>
      recordDeliveryStatus(h.runtime.db, h.runtime.keyring, {
        tenantId: t.id,
        providerMessageId,
        status: s,
        errorCode,
        occurredAt: new Date(),
      });
    await status('delivered');
    await status('read');
    await status('read');
    await status('failed', '131047');
    await waitFor(async () => rx.accepted.length === 3, { what: 'three status events' });
    assert.deepEqual(
      rx.accepted.map((r) => [r.json.data.status, r.json.data.error_code, r.json.data.message_id]),
      [
        ['delivered', undefined, reply.id],
        ['read', undefined, reply.id],
        ['failed', '131047', reply.id],
      ],
    );

    await recordAccess(h.runtime.db, {
      tenantId: t.id,
      dataSourceId: 'orders',
      query: 'order_status',
      responseTimeMs: 5,
      outcome: 'error',
      error: 'boom',
      via: 'direct',
    });
    await recordAccess(h.runtime.db, {
      tenantId: t.id,
      dataSourceId: 'orders',
      query: 'order_status',
      responseTimeMs: 5,
      outcome: 'ok',
      via: 'direct',
    });
    await recordAccess(h.runtime.db, {
      tenantId: t.id,
      dataSourceId: 'stock',
      query: 'stock_level',
      responseTimeMs: 5,
      outcome: 'error',
      via: 'direct',
    });
    await waitFor(async () => rx.ofType('lookup.failed').length === 2, { what: 'two lookup.failed events' });
    assert.deepEqual(
      rx.ofType('lookup.failed').map((r) => r.json.data.data_source_id),
      ['orders', 'stock'],
    );
    assert.equal(
      rx.requests.some((r) => r.body.includes('boom')),
      false,
      'an error text never leaves',
    );
  });

  it('fires conversation.handover_requested once, also when the handover step is retried', async () => {
    const t = await h.createTenant();
    const { rx, url } = await receiver();
    await createEndpoint(t, { url, events: ['conversation.handover_requested', 'message.received'] });
    const from = uniquePhone();
    const { conversation_id } = await say(t, from, 'hi');
    const step = { tenantId: t.id, conversationId: conversation_id, reason: 'low_confidence' as const, confidence: 0.2 };
    await handOver(h.runtime.db, h.runtime.keyring, step);
    await handOver(h.runtime.db, h.runtime.keyring, step);
    // The conversation's next event arrives after any handover event (same order key).
    await say(t, from, 'anyone there?');
    await waitFor(async () => rx.ofType('message.received').length === 2, { what: 'the next message' });
    const handovers = rx.ofType('conversation.handover_requested');
    assert.equal(handovers.length, 1);
    assert.equal(handovers[0].json.data.conversation_id, conversation_id);
    assert.equal(handovers[0].json.data.reason, 'low_confidence');
    assert.equal(typeof handovers[0].json.data.contact_id, 'string');
  });

  it('keeps each conversation in order through a receiver outage, 200 messages, no id with two bodies', async () => {
    const t = await tenantWithKnowledge();
    const { rx, url } = await receiver();
    let down = true;
    rx.respond = () => (down ? { status: 503 } : { status: 200 });
    await createEndpoint(t, { url, events: ['message.received'], include_message_text: true });
    const conversations = 10;
    const perConversation = 20;
    await Promise.all(
      Array.from({ length: conversations }, async (_, c) => {
        const from = uniquePhone();
        for (let m = 0; m < perConversation; m++) await say(t, from, `c${c}-m${m}`);
      }),
    );
    await waitFor(async () => rx.requests.length >= conversations, { what: 'attempts during the outage' });
    await delay(1000);
    down = false;
    await waitFor(async () => new Set(rx.accepted.map((r) => r.json.id)).size === conversations * perConversation, {
      what: 'every event after recovery',
      timeoutMs: 150_000,
      intervalMs: 250,
    });

    const bodies = new Map<string, Set<string>>();
    for (const r of rx.requests) bodies.set(r.json.id, (bodies.get(r.json.id) ?? new Set()).add(r.body));
    assert.ok(
      [...bodies.values()].every((b) => b.size === 1),
      'no event id with two different bodies',
    );

    // No event was attempted before the previous one of its conversation was delivered.
    const delivered = new Map<number, Set<number>>();
    for (const r of rx.requests) {
      const [, c, m] = /^c(\d+)-m(\d+)$/.exec(r.json.data.text)!.map(Number);
      const done = delivered.get(c) ?? new Set<number>();
      for (let k = 0; k < m; k++) assert.ok(done.has(k), `c${c}: m${m} attempted before m${k} was delivered`);
      if (r.status === 200) done.add(m);
      delivered.set(c, done);
    }
    assert.equal(rx.accepted.length, conversations * perConversation, 'each event accepted exactly once');
  });

  it('a 410 disables the endpoint; another 4xx fails at once; redeliver sends the same id and body', async () => {
    const t = await h.createTenant();
    const gone = await receiver();
    gone.rx.respond = () => ({ status: 410 });
    const g = await createEndpoint(t, { url: gone.url, events: ['message.received'] });
    const bad = await receiver();
    let status = 400;
    bad.rx.respond = () => ({ status });
    const b = await createEndpoint(t, { url: bad.url, events: ['message.received'] });
    await say(t, uniquePhone(), 'one');

    await waitFor(async () => (await h.request('GET', `${endpoints(t)}/${g.id}`, { key: t.key })).body.enabled === false, {
      what: 'disabled',
    });
    const ge = await h.request('GET', `${endpoints(t)}/${g.id}`, { key: t.key });
    assert.equal(ge.body.disabled_reason, 'gone');
    const failedBad = await waitFor(
      async () => {
        const d = await h.request('GET', `${endpoints(t)}/${b.id}/deliveries?status=failed`, { key: t.key });
        return d.body.deliveries.length === 1 && d.body.deliveries[0];
      },
      { what: 'a failed delivery' },
    );
    assert.equal(failedBad.attempts, 1);
    assert.equal(failedBad.last_status_code, 400);
    assert.equal(bad.rx.requests.length, 1);
    assert.equal(gone.rx.requests.length, 1);

    // A disabled endpoint gets nothing more: the next message reaches only the other one.
    await say(t, uniquePhone(), 'two');
    await waitFor(async () => bad.rx.requests.length === 2, { what: 'the second event' });
    const redeliverGone = await h.request('POST', `${endpoints(t)}/${g.id}/deliveries/${failedBad.id}/redeliver`, { key: t.key });
    assert.equal(redeliverGone.status, 409);
    assert.equal(gone.rx.requests.length, 1);

    status = 200;
    const again = await h.request('POST', `${endpoints(t)}/${b.id}/deliveries/${failedBad.id}/redeliver`, { key: t.key });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    await waitFor(async () => bad.rx.accepted.length === 1, { what: 'the redelivery' });
    const first = bad.rx.requests[0];
    const redelivered = bad.rx.accepted[0];
    assert.equal(redelivered.json.id, first.json.id);
    assert.equal(redelivered.body, first.body);
    verify(b.secret, redelivered);

    const unknown = await h.request('POST', `${endpoints(t)}/${b.id}/deliveries/${g.id}/redeliver`, { key: t.key });
    assert.equal(unknown.status, 404);
    const health = await h.request('GET', '/');
    assert.ok(health.body.events.endpoints_disabled >= 1, JSON.stringify(health.body));
    assert.match(health.body.warnings.join(' '), /webhook endpoint\(s\) disabled/);
  });

  it('replay re-sends exactly the range asked', async () => {
    const t = await h.createTenant();
    const first = await receiver();
    await createEndpoint(t, { url: first.url, events: ['message.received'] });
    const from = uniquePhone();
    const batch = async (n: number, tag: string) => {
      const before = first.rx.accepted.length;
      for (let i = 0; i < n; i++) await say(t, from, `${tag}${i}`);
      await waitFor(async () => first.rx.accepted.length === before + n, { what: `batch ${tag}` });
      await delay(20);
      return first.rx.accepted.slice(before).map((r) => r.json.id);
    };
    await batch(2, 'a');
    const since = new Date().toISOString();
    const middle = await batch(3, 'b');
    const until = new Date().toISOString();
    const last = await batch(2, 'c');

    const second = await receiver();
    const ep = await createEndpoint(t, { url: second.url, events: ['message.received'] });
    const bad = await h.request('POST', `${endpoints(t)}/${ep.id}/replay`, { key: t.key, body: { since: 'yesterday' } });
    assert.equal(bad.status, 400);
    const res = await h.request('POST', `${endpoints(t)}/${ep.id}/replay`, {
      key: t.key,
      body: { since, until, types: ['message.received'] },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.count, 3);
    // The rest of the conversation, replayed after: once it arrives, the first replay is complete (same order key).
    const rest = await h.request('POST', `${endpoints(t)}/${ep.id}/replay`, { key: t.key, body: { since: until } });
    assert.equal(rest.body.count, 2);
    await waitFor(async () => second.rx.accepted.length >= 5, { what: 'both replays' });
    assert.deepEqual(
      second.rx.accepted.map((r) => r.json.id),
      [...middle, ...last],
    );
    assert.deepEqual(
      second.rx.accepted.map((r) => r.body),
      first.rx.accepted.filter((r) => [...middle, ...last].includes(r.json.id)).map((r) => r.body),
      'a replayed event has the body it had',
    );
  });
});

describe('outbound events: a worker killed mid-delivery', () => {
  let h: Harness;
  const rx = new WebhookReceiver();
  before(async () => {
    h = await createHarness({ worker: false });
  });
  after(async () => {
    await rx.close();
    await h.close();
  });

  it('delivers the event once more at most, with the same id and body', async () => {
    const url = await rx.start();
    // The first request hangs: the worker is killed while its attempt is in flight.
    rx.respond = () => ({ status: rx.requests.length === 1 ? 0 : 200 });
    const t = await h.createTenant();
    const ep = await h.request('POST', `/routes/tenants/${t.id}/webhook-endpoints`, {
      key: t.key,
      body: { url, events: ['message.received'] },
    });
    assert.equal(ep.status, 201);
    const first = spawnWorker(h);
    try {
      const res = await h.inbound(t.key, { from: uniquePhone(), message: 'hi', tenant_id: t.id, timestamp: new Date().toISOString() });
      assert.equal(res.status, 202);
      await waitFor(async () => rx.requests.length === 1, { what: 'the first attempt', timeoutMs: 60_000 });
    } finally {
      await killHard(first);
    }
    const second = spawnWorker(h);
    try {
      // The lost attempt is retried once its 30 s start-to-close timeout passes.
      await waitFor(async () => rx.accepted.length === 1, { what: 'the retried attempt', timeoutMs: 120_000, intervalMs: 250 });
      const deliveries = await h.request('GET', `/routes/tenants/${t.id}/webhook-endpoints/${ep.body.id}/deliveries`, { key: t.key });
      assert.equal(deliveries.body.deliveries[0].status, 'delivered');
      assert.equal(rx.requests.length, 2, 'delivered once more, not more');
      assert.equal(rx.requests[1].json.id, rx.requests[0].json.id);
      assert.equal(rx.requests[1].body, rx.requests[0].body);
      verify(ep.body.secret, rx.requests[1]);
    } finally {
      await killHard(second);
    }
  });
});
