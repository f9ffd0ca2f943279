import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities/index.js';
import { messages } from '../core/db/schema.js';
import { findChannel } from '../core/providers/channels.js';
import { acceptInbound } from '../core/messaging/accept-inbound.js';
import { numberedText, optionForNumber, sendInteractive } from '../core/providers/interactive.js';
import type { Interactive } from '../core/providers/types.js';
import { retryAfterMs } from '../core/providers/http.js';
import { createHarness, uniquePhone, type Harness } from './helpers/harness.js';
import { FakeProvider, metaChannelBody } from './helpers/fake-providers.js';

const TWILIO_SID = `AC${'b2'.repeat(16)}`;

describe('delivery: 24-hour window, templates and interactive messages', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  const twilio = new FakeProvider('twilio', { token: 'twilio-token', accountSid: TWILIO_SID });
  const infobip = new FakeProvider('infobip', { token: 'ib-key' });
  const ch = { withTemplate: '', withoutTemplate: '', twilio: '', infobip: '' };
  let activities: ReturnType<typeof createActivities>;

  const addChannel = async (body: unknown) => {
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key, body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id as string;
  };
  const metaChannel = (template?: unknown) => metaChannelBody(meta.url, template ? { template } : {});

  /** A conversation whose last inbound message is `ageHours` old, with one reply recorded and not yet sent. */
  async function queuedReply(channelId: string, ageHours: number) {
    const accepted = await acceptInbound(h.runtime.db, h.runtime.keyring, {
      tenantId: tenant.id,
      channelId,
      from: uniquePhone(),
      text: 'old question',
      timestamp: new Date().toISOString(),
    });
    await h.runtime.pool.query(`UPDATE conversations SET last_inbound_at = now() - make_interval(hours => $2) WHERE id = $1`, [
      accepted.conversationId,
      ageHours,
    ]);
    const { rows } = await h.runtime.pool.query(
      `INSERT INTO messages (tenant_id, conversation_id, direction, dedupe_key, body_enc, status, in_reply_to, reply_source)
       VALUES ($1, $2, 'outbound', $3, $4, 'sending', ARRAY[$5]::uuid[], 'knowledge')
       RETURNING id, (SELECT contact_id FROM conversations WHERE id = $2) AS contact_id`,
      [
        tenant.id,
        accepted.conversationId,
        `reply:${accepted.messageId}`,
        h.runtime.keyring.encrypt('a free-form answer', { tenantId: tenant.id, column: messages.bodyEnc }),
        accepted.messageId,
      ],
    );
    return {
      tenantId: tenant.id,
      messageId: rows[0].id,
      channelId,
      contactId: rows[0].contact_id,
      conversationId: accepted.conversationId,
    };
  }
  const runDeliver = (input: Parameters<typeof activities.deliverReply>[0]) =>
    new MockActivityEnvironment().run(activities.deliverReply, input) as ReturnType<typeof activities.deliverReply>;
  const row = async (id: string) =>
    (await h.runtime.pool.query('SELECT status, delivery_status, delivery_error_code, reply_source FROM messages WHERE id = $1', [id]))
      .rows[0];

  before(async () => {
    await Promise.all([meta.start(), twilio.start(), infobip.start()]);
    h = await createHarness({ worker: false });
    tenant = await h.createTenant();
    ch.withTemplate = await addChannel(metaChannel({ name: 'reopen_conversation', language: 'en_US' }));
    ch.withoutTemplate = await addChannel(metaChannel());
    ch.twilio = await addChannel({
      provider: 'twilio',
      credentials: { account_sid: TWILIO_SID, auth_token: 'twilio-token', from: uniquePhone() },
      api_base_url: twilio.url,
    });
    ch.infobip = await addChannel({
      provider: 'infobip',
      credentials: { api_key: 'ib-key', webhook_secret: 'x'.repeat(16), sender: uniquePhone() },
      api_base_url: infobip.url,
    });
    activities = createActivities({ db: h.runtime.db, keyring: h.runtime.keyring, providers: h.runtime.providers });
  });
  after(async () => {
    await h.close();
    await Promise.all([meta.close(), twilio.close(), infobip.close()]);
  });

  it('inside the window sends the free-form text', async () => {
    const input = await queuedReply(ch.withoutTemplate, 1);
    const result = await runDeliver(input);
    assert.equal(result.status, 'sent');
    assert.equal(result.via, 'text');
    assert.equal(meta.sends().at(-1)!.body.text.body, 'a free-form answer');
  });

  it('outside the 24-hour window sends the channel template instead', async () => {
    const input = await queuedReply(ch.withTemplate, 25);
    const before = meta.sends().length;
    const result = await runDeliver(input);
    assert.equal(result.status, 'sent');
    assert.equal(result.via, 'template');
    const sent = meta.sends().slice(before);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].body.type, 'template');
    assert.deepEqual(sent[0].body.template, { name: 'reopen_conversation', language: { code: 'en_US' } });
    assert.equal((await row(input.messageId)).reply_source, 'knowledge:template');
  });

  it('outside the window without a template records that it could not reply', async () => {
    const input = await queuedReply(ch.withoutTemplate, 30);
    const before = meta.sends().length;
    const result = await runDeliver(input);
    assert.equal(result.status, 'failed');
    assert.equal(meta.sends().length, before, 'nothing sent');
    const r = await row(input.messageId);
    assert.equal(r.status, 'failed');
    assert.equal(r.delivery_error_code, 'window_closed');
    // Running it again (a retry or replay) changes nothing.
    assert.equal((await runDeliver(input)).status, 'failed');
  });

  it('a Twilio window-closed rejection (63016) is non-retryable and recorded', async () => {
    twilio.failNext({
      status: 400,
      body: { code: 63016, message: 'Failed to send freeform message because you are outside the allowed window', status: 400 },
    });
    const input = await queuedReply(ch.twilio, 1);
    await assert.rejects(runDeliver(input), (err: any) => {
      assert.equal(err.type, 'ProviderRejected');
      assert.equal(err.nonRetryable, true);
      return true;
    });
    const r = await row(input.messageId);
    assert.equal(r.status, 'failed');
    assert.equal(r.delivery_error_code, '63016');
  });

  it('a 429 is retryable with Retry-After as the next retry delay', async () => {
    infobip.failNext({
      status: 429,
      headers: { 'retry-after': '7' },
      body: { requestError: { serviceException: { messageId: 'TOO_MANY_REQUESTS' } } },
    });
    const input = await queuedReply(ch.infobip, 1);
    await assert.rejects(runDeliver(input), (err: any) => {
      assert.equal(err.type, 'ProviderThrottled');
      assert.equal(err.nonRetryable, false);
      assert.equal(Number(err.nextRetryDelay), 7000);
      return true;
    });
    assert.equal((await row(input.messageId)).status, 'sending', 'still pending: Temporal retries it');
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryAfterMs(new Headers({ 'retry-after': '3' }), now), 3000);
    assert.equal(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now), 5000);
    assert.equal(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now), undefined);
    assert.equal(retryAfterMs(new Headers(), now), undefined);
  });

  const buttons: Interactive = {
    kind: 'buttons',
    body: 'Pick one',
    buttons: [
      { id: 'a', title: 'Sales' },
      { id: 'b', title: 'Support' },
    ],
  };
  const list: Interactive = {
    kind: 'list',
    body: 'Which department?',
    button: 'Choose',
    sections: [
      {
        title: 'Teams',
        rows: [
          { id: 's', title: 'Sales' },
          { id: 'b', title: 'Billing', description: 'Invoices' },
        ],
      },
    ],
  };

  it('sends native buttons and lists on Meta and Infobip, numbered text on Twilio', async () => {
    const to = uniquePhone();
    const send = async (channelId: string, interactive: Interactive) => {
      const channel = (await findChannel(h.runtime.db, channelId))!;
      return sendInteractive(h.runtime.providers.forChannel(channel), {
        tenantId: tenant.id,
        channel,
        to,
        interactive,
        idempotencyKey: randomBytes(4).toString('hex'),
        inReplyTo: [],
      });
    };
    await send(ch.withoutTemplate, buttons);
    const mb = meta.sends().at(-1)!.body;
    assert.equal(mb.type, 'interactive');
    assert.deepEqual(mb.interactive, {
      type: 'button',
      body: { text: 'Pick one' },
      action: {
        buttons: [
          { type: 'reply', reply: { id: 'a', title: 'Sales' } },
          { type: 'reply', reply: { id: 'b', title: 'Support' } },
        ],
      },
    });
    await send(ch.withoutTemplate, list);
    assert.equal(meta.sends().at(-1)!.body.interactive.type, 'list');
    assert.equal(meta.sends().at(-1)!.body.interactive.action.button, 'Choose');

    await send(ch.infobip, list);
    const ib = infobip.sends().at(-1)!;
    assert.equal(ib.path, '/whatsapp/1/message/interactive/list');
    assert.equal(ib.body.content.action.title, 'Choose');
    await send(ch.infobip, buttons);
    assert.deepEqual(infobip.sends().at(-1)!.body.content.action.buttons[0], { type: 'REPLY', id: 'a', title: 'Sales' });

    await send(ch.twilio, list);
    const tw = twilio.sends().at(-1)!;
    assert.equal(tw.body.Body, numberedText(list));
    assert.match(tw.body.Body, /1\. Sales\n2\. Billing — Invoices/);
    assert.equal(optionForNumber(list, ' 2 '), 'b');
    assert.equal(optionForNumber(list, '3'), undefined);
  });
});
