import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { channels, messages } from '../core/db/schema.js';
import { acceptInbound } from '../core/messaging/accept-inbound.js';
import { callProvider, checkWindow, recordOutbound, type OutboundDeps } from '../core/messaging/outbound.js';
import { SERVICE_WINDOW_MS } from '../core/messaging/delivery-policy.js';
import { createHarness, uniquePhone, type Harness } from './helpers/harness.js';
import { FakeProvider, metaChannelBody } from './helpers/fake-providers.js';

describe('outbound module: the steps every send takes', () => {
  let h: Harness;
  let deps: OutboundDeps;
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  let tenant: { id: string; key: string };

  const channelRow = async (id: string) => (await h.runtime.db.select().from(channels).where(eq(channels.id, id)))[0];
  const slotRows = async (channelId: string) =>
    (await h.runtime.pool.query('SELECT count(*)::int AS n FROM channel_send_pacing WHERE channel_id = $1', [channelId])).rows[0].n;

  before(async () => {
    await meta.start();
    h = await createHarness({ worker: false });
    deps = { db: h.runtime.db, keyring: h.runtime.keyring, providers: h.runtime.providers };
    tenant = await h.createTenant();
  });
  after(async () => {
    await h.close();
    await meta.close();
  });

  it('checks the 24-hour window: text inside, the template outside, nothing without one', () => {
    const template = { name: 'reopen', language: 'en' };
    const inside = new Date(Date.now() - SERVICE_WINDOW_MS + 60_000);
    const outside = new Date(Date.now() - SERVICE_WINDOW_MS - 60_000);
    assert.deepEqual(checkWindow(inside, template), { via: 'text' });
    assert.deepEqual(checkWindow(outside, template), { via: 'template', template });
    assert.deepEqual(checkWindow(outside, null), { via: 'closed' });
    assert.deepEqual(checkWindow(null, undefined), { via: 'closed' }, 'a customer who never wrote');
  });

  it('records under the idempotency key once: a repeat returns the first record', async () => {
    const accepted = await acceptInbound(h.runtime.db, h.runtime.keyring, {
      tenantId: tenant.id,
      from: uniquePhone(),
      text: 'hi',
      timestamp: new Date().toISOString(),
    });
    const record = {
      tenantId: tenant.id,
      conversationId: accepted.conversationId,
      dedupeKey: `reply:${accepted.messageId}`,
      text: 'first',
      inReplyTo: [accepted.messageId],
      replySource: 'knowledge',
    };
    const first = await recordOutbound(h.runtime.db, h.runtime.keyring, record);
    const again = await recordOutbound(h.runtime.db, h.runtime.keyring, { ...record, text: 'second' });
    assert.equal(again.id, first.id);
    assert.equal(first.status, 'sending');
    const { rows } = await h.runtime.pool.query('SELECT body_enc FROM messages WHERE tenant_id = $1 AND dedupe_key = $2', [
      tenant.id,
      record.dedupeKey,
    ]);
    assert.equal(rows.length, 1);
    assert.equal(
      h.runtime.keyring.decrypt(rows[0].body_enc, { tenantId: tenant.id, column: messages.bodyEnc }),
      'first',
      'the first record wins',
    );
  });

  it("takes the number's send slot for a real provider, and sends its template natively", async () => {
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
      key: tenant.key,
      body: metaChannelBody(meta.url),
    });
    assert.equal(res.status, 201);
    const channel = await channelRow(res.body.id);
    const to = uniquePhone();
    const sent = await callProvider(deps, {
      tenantId: tenant.id,
      channel,
      to,
      text: 'Hi Ada',
      idempotencyKey: `${tenant.id}:test:${randomBytes(4).toString('hex')}`,
      inReplyTo: [],
      window: { via: 'template', template: { name: 'pulse_hello', language: 'en', parameters: ['Ada'] } },
    });
    assert.match(sent.providerMessageId, /^wamid\./);
    assert.equal(await slotRows(channel.id), 1, 'the send reserved a slot of its number');
    const [req] = meta.sends().filter((r) => r.body.to === to.replace('+', ''));
    assert.equal(req.body.type, 'template');
    assert.equal(req.body.template.name, 'pulse_hello');
  });

  it('sends through the sandbox without a slot, recording a template by name with the text', async () => {
    const [sandbox] = await h.runtime.db
      .select()
      .from(channels)
      .where(and(eq(channels.tenantId, tenant.id), eq(channels.provider, 'sandbox')));
    assert.ok(sandbox);
    const to = uniquePhone();
    await callProvider(deps, {
      tenantId: tenant.id,
      channel: sandbox,
      to,
      text: 'Hi Ada',
      idempotencyKey: `${tenant.id}:test:${randomBytes(4).toString('hex')}`,
      inReplyTo: [],
      window: { via: 'template', template: { name: 'pulse_hello', language: 'en', parameters: ['Ada'] } },
    });
    assert.equal(await slotRows(sandbox.id), 0);
    const got = await h.sandbox(tenant.id, tenant.key, to);
    assert.equal(got.length, 1);
    assert.equal(got[0].text, 'Hi Ada');
  });
});
