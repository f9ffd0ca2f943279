import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeProvider } from './helpers/fake-providers.js';
import { metaPayload, metaStatus, metaText, postInfobip, postMeta, postTwilio, wamid } from './helpers/webhooks.js';
import { twilioSignature } from '../core/webhooks/twilio.js';

const META_SECRET = 'meta-app-secret-0123';
const TWILIO_SID = `AC${'a1'.repeat(16)}`;
const TWILIO_TOKEN = 'twilio-auth-token-0123';
const INFOBIP_SECRET = 'infobip-webhook-secret-0123';

describe('providers: channels, signed webhooks, statuses and real senders', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  const meta = new FakeProvider('meta', { token: 'meta-access-token' });
  const twilio = new FakeProvider('twilio', { token: TWILIO_TOKEN, accountSid: TWILIO_SID });
  const infobip = new FakeProvider('infobip', { token: 'infobip-api-key' });
  const ids = { meta: '', twilio: '', infobip: '' };
  const pnid = `10${randomBytes(4).readUInt32BE()}`;
  const twilioNumber = uniquePhone();
  const infobipNumber = uniquePhone();

  const outbound = async (conversationId: string) =>
    (
      await h.runtime.pool.query(
        `SELECT id, status, provider_message_id, delivery_status, delivery_error_code, reply_source FROM messages
          WHERE conversation_id = $1 AND direction = 'outbound' ORDER BY seq`,
        [conversationId],
      )
    ).rows;
  const conversationOf = async (from: string, channelId: string) => {
    const { rows } = await h.runtime.pool.query(
      `SELECT c.id, c.team FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE k.phone_hash = $1 AND c.channel_id = $2`,
      [h.runtime.keyring.blindIndex(from), channelId],
    );
    return rows[0] as { id: string; team: string | null } | undefined;
  };
  const messageCount = async () => Number((await h.runtime.pool.query('SELECT count(*) FROM messages')).rows[0].count);

  before(async () => {
    await Promise.all([meta.start(), twilio.start(), infobip.start()]);
    h = await createHarness();
    tenant = await h.createTenant();
    const add = async (body: unknown) => {
      const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key, body });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.id as string;
    };
    ids.meta = await add({
      provider: 'meta',
      display_phone_number: '+15550783881',
      credentials: { phone_number_id: pnid, access_token: 'meta-access-token', app_secret: META_SECRET, verify_token: 'verify-me-please' },
      api_base_url: meta.url,
      team: 'support',
    });
    ids.twilio = await add({
      provider: 'twilio',
      credentials: { account_sid: TWILIO_SID, auth_token: TWILIO_TOKEN, from: `whatsapp:${twilioNumber}` },
      api_base_url: twilio.url,
      team: 'sales',
    });
    ids.infobip = await add({
      provider: 'infobip',
      credentials: { api_key: 'infobip-api-key', webhook_secret: INFOBIP_SECRET, sender: infobipNumber.slice(1) },
      api_base_url: infobip.url,
      team: 'billing',
    });
  });
  after(async () => {
    await h.close();
    await Promise.all([meta.close(), twilio.close(), infobip.close()]);
  });

  it('registers channels: credentials encrypted and redacted, first real channel becomes the default', async () => {
    const list = await h.request('GET', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key });
    assert.equal(list.status, 200);
    const byId = new Map(list.body.channels.map((c: any) => [c.id, c]));
    const m: any = byId.get(ids.meta);
    assert.equal(m.is_default, true, 'first non-sandbox channel is the default');
    assert.equal(m.team, 'support');
    assert.equal(m.routing_key, pnid);
    assert.equal(m.credentials.phone_number_id, pnid);
    assert.equal(m.credentials.access_token, '[redacted]');
    assert.equal(m.credentials.app_secret, '[redacted]');
    assert.equal((byId.get(ids.twilio) as any).is_default, false);
    assert.equal(list.body.channels.filter((c: any) => c.is_default).length, 1);
    assert.equal(list.body.channels.find((c: any) => c.provider === 'sandbox').is_default, false);
    assert.ok(!JSON.stringify(list.body).includes(META_SECRET));

    const { rows } = await h.runtime.pool.query('SELECT credentials_enc FROM channels WHERE id = $1', [ids.meta]);
    assert.ok(rows[0].credentials_enc.startsWith('v2.'));
    assert.ok(!rows[0].credentials_enc.includes('meta-access-token'));

    const dup = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
      key: tenant.key,
      body: { provider: 'meta', credentials: { phone_number_id: pnid, access_token: 'x', app_secret: 'y', verify_token: 'z' } },
    });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'CHANNEL_EXISTS');
    const bad = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
      key: tenant.key,
      body: { provider: 'meta', credentials: { phone_number_id: '123', access_token: 'x', verify_token: 'z' } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^body\.credentials\.app_secret/);
    const openapi = await h.request('GET', '/openapi.json');
    for (const route of ['/routes/tenants/{tenant_id}/channels', '/webhooks/meta', '/webhooks/twilio', '/webhooks/infobip/{channel_id}']) {
      assert.ok(openapi.body.paths[route], `${route} in the OpenAPI document`);
    }
    const other = await h.createTenant();
    const foreign = await h.request('GET', `/routes/tenants/${tenant.id}/channels`, { key: other.key });
    assert.equal(foreign.status, 404);
  });

  it('answers the Meta verification handshake only for a known verify token', async () => {
    const ok = await fetch(`${h.baseUrl}/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me-please&hub.challenge=1158201444`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), '1158201444');
    const wrong = await fetch(`${h.baseUrl}/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`);
    assert.equal(wrong.status, 403);
  });

  it('rejects unsigned, tampered and wrongly signed Meta webhooks with 401, storing and logging nothing', async () => {
    const marker = `secret-marker-${randomBytes(4).toString('hex')}`;
    const payload = metaPayload(pnid, { messages: [metaText(uniquePhone(), marker)] });
    const before = await messageCount();
    const tampered = await postMeta(h.baseUrl, payload, META_SECRET, {
      signedBody: JSON.stringify(metaPayload(pnid, { messages: [metaText(uniquePhone(), 'original')] })),
    });
    const wrongSecret = await postMeta(h.baseUrl, payload, 'not-the-app-secret');
    const missing = await postMeta(h.baseUrl, payload, META_SECRET, { signature: null });
    const garbage = await postMeta(h.baseUrl, payload, META_SECRET, { signature: 'sha256=00' });
    for (const r of [tampered, wrongSecret, missing, garbage]) {
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'SIGNATURE_INVALID');
    }
    assert.equal(await messageCount(), before, 'nothing stored');
    assert.ok(!h.logs.text().includes(marker), 'the body is never logged');
    assert.match(h.logs.text(), /webhook rejected/);
  });

  it('accepts each message of a signed Meta webhook (text, button reply, list reply, location, media) and replies through the Cloud API', async () => {
    const senders = [uniquePhone(), uniquePhone(), uniquePhone(), uniquePhone(), uniquePhone()];
    const mediaId = `media${randomBytes(4).toString('hex')}`;
    const messages = [
      metaText(senders[0], 'hello'),
      {
        from: senders[1].slice(1),
        id: wamid(),
        timestamp: '1700000000',
        type: 'interactive',
        interactive: { type: 'button_reply', button_reply: { id: 'yes', title: 'Yes please' } },
      },
      {
        from: senders[2].slice(1),
        id: wamid(),
        timestamp: '1700000000',
        type: 'interactive',
        interactive: { type: 'list_reply', list_reply: { id: 'r2', title: 'Returns', description: 'Send it back' } },
      },
      {
        from: senders[3].slice(1),
        id: wamid(),
        timestamp: '1700000000',
        type: 'location',
        location: { latitude: 6.8, longitude: -58.16, name: 'Shop' },
      },
      {
        from: senders[4].slice(1),
        id: wamid(),
        timestamp: '1700000000',
        type: 'image',
        image: { id: mediaId, mime_type: 'image/jpeg', sha256: 'abc', caption: 'my receipt' },
      },
    ];
    const payload = metaPayload(pnid, { messages });
    const sentBefore = meta.sends().length;
    const res = await postMeta(h.baseUrl, payload, META_SECRET);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { accepted: 5, duplicates: 0, statuses: 0 });

    await waitFor(async () => meta.sends().length >= sentBefore + 5, { timeoutMs: 30_000, what: 'five replies at the fake Meta' });
    const replies = meta.sends().slice(sentBefore);
    for (const r of replies) {
      assert.equal(r.headers.authorization, 'Bearer meta-access-token');
      assert.equal(r.path, `/v21.0/${pnid}/messages`);
      assert.equal(r.body.type, 'text');
    }
    assert.deepEqual(new Set(replies.map((r) => `+${r.body.to}`)), new Set(senders));

    const conv = await conversationOf(senders[1], ids.meta);
    assert.equal(conv?.team, 'support', 'the channel team is carried into the conversation');
    const texts = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${conv!.id}`, { key: tenant.key });
    assert.equal(texts.body.team, 'support');
    assert.equal(texts.body.messages[0].text, 'Yes please');
    assert.equal(texts.body.messages[0].choice_id, 'yes');
    const out = await waitFor(async () => {
      const rows = await outbound(conv!.id);
      return rows[0]?.status === 'sent' && rows;
    });
    // Stored as its keyed hash, never the wamid itself (it embeds the customer's number).
    const wamidSent = meta.sentId((r) => r.body.to === senders[1].slice(1));
    assert.match(wamidSent ?? '', /^wamid\./);
    assert.equal(out[0].provider_message_id, h.runtime.keyring.blindIndex(wamidSent!));

    // The image: metadata stored at once, content fetched by the download workflow.
    const media = await waitFor(
      async () => {
        const { rows } = await h.runtime.pool.query(
          `SELECT status, mime_type, size_bytes, content_enc FROM message_media WHERE tenant_id = $1`,
          [tenant.id],
        );
        return rows[0]?.status === 'downloaded' && rows[0];
      },
      { timeoutMs: 30_000, what: 'media download' },
    );
    assert.equal(media.mime_type, 'image/jpeg');
    assert.equal(media.size_bytes, `media-bytes:${mediaId}`.length);
    assert.ok(!media.content_enc.toString('utf8').includes('media-bytes'), 'content is encrypted');
    const imageConv = await conversationOf(senders[4], ids.meta);
    const imageMsg = (await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${imageConv!.id}`, { key: tenant.key })).body
      .messages[0];
    assert.equal(imageMsg.text, 'my receipt');
    const listed = await h.request('GET', `/routes/tenants/${tenant.id}/messages/${imageMsg.id}/media`, { key: tenant.key });
    assert.equal(listed.body.media[0].status, 'downloaded');
    const content = await fetch(`${h.baseUrl}/routes/tenants/${tenant.id}/media/${listed.body.media[0].id}/content`, {
      headers: { authorization: `Bearer ${tenant.key}` },
    });
    assert.equal(content.headers.get('content-type'), 'image/jpeg');
    assert.equal(await content.text(), `media-bytes:${mediaId}`);

    // Provider re-delivery: acknowledged, never answered twice.
    const again = await postMeta(h.baseUrl, payload, META_SECRET);
    assert.deepEqual(again.body, { accepted: 0, duplicates: 5, statuses: 0 });
    await delay(1500);
    assert.equal(meta.sends().length, sentBefore + 5);
  });

  it('records statuses in any order, a failure with its code, and a status that arrives before the send response', async () => {
    const from = uniquePhone();
    // The fake Meta posts the "delivered" callback for the id it is about to return, and only then answers.
    meta.beforeAnswer = async (_req, answer) => {
      meta.beforeAnswer = undefined;
      const id = (answer.body as any)?.messages?.[0]?.id ?? '';
      const cb = await postMeta(h.baseUrl, metaPayload(pnid, { statuses: [metaStatus(id, 'delivered')] }), META_SECRET);
      assert.equal(cb.status, 200);
    };
    const res = await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(from, 'status please')] }), META_SECRET);
    assert.equal(res.status, 200);
    const conv = await waitFor(() => conversationOf(from, ids.meta));
    const [row] = await waitFor(
      async () => {
        const rows = await outbound(conv.id);
        return rows[0]?.delivery_status === 'delivered' && rows;
      },
      { what: 'status that beat the response' },
    );
    assert.equal(row.status, 'sent');

    // read, sent, delivered out of order: read wins.
    const id = meta.sentId((r) => r.body.to === from.slice(1))!;
    for (const s of ['read', 'sent', 'delivered']) {
      await postMeta(h.baseUrl, metaPayload(pnid, { statuses: [metaStatus(id, s)] }), META_SECRET);
    }
    assert.equal((await outbound(conv.id))[0].delivery_status, 'read');
    // A failure (several statuses in one webhook) is recorded with its error code.
    const multi = await postMeta(
      h.baseUrl,
      metaPayload(pnid, {
        statuses: [metaStatus(id, 'failed', [{ code: 131047, title: 'Re-engagement message' }]), metaStatus(wamid(), 'sent')],
      }),
      META_SECRET,
    );
    assert.equal(multi.body.statuses, 2);
    const failed = (await outbound(conv.id))[0];
    assert.equal(failed.delivery_status, 'failed');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.delivery_error_code, '131047');
    const view = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${conv.id}`, { key: tenant.key });
    assert.deepEqual(
      [view.body.messages[1].status, view.body.messages[1].delivery_status, view.body.messages[1].delivery_error_code],
      ['failed', 'failed', '131047'],
    );
  });

  it('retries 500 and 429 (honouring Retry-After) and records a 4xx rejection as a failed delivery without retrying', async () => {
    meta.failNext(
      { status: 500, body: { error: { code: 1, message: 'An unknown error occurred' } } },
      { status: 429, headers: { 'retry-after': '2' }, body: { error: { code: 130429, message: 'Rate limit hit' } } },
    );
    const from = uniquePhone();
    const start = meta.sends().length;
    await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(from, 'retry me')] }), META_SECRET);
    const conv = await waitFor(() => conversationOf(from, ids.meta));
    await waitFor(async () => (await outbound(conv.id))[0]?.status === 'sent', { timeoutMs: 30_000, what: 'send after retries' });
    const attempts = meta.sends().slice(start);
    assert.equal(attempts.length, 3);
    assert.ok(
      attempts[2].at - attempts[1].at >= 1900,
      `Retry-After 2 s honoured (waited ${Math.round(attempts[2].at - attempts[1].at)} ms)`,
    );

    meta.failNext({ status: 400, body: { error: { code: 131026, title: 'Message undeliverable', message: 'Message undeliverable' } } });
    const bad = uniquePhone();
    const before = meta.sends().length;
    await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(bad, 'undeliverable')] }), META_SECRET);
    const badConv = await waitFor(() => conversationOf(bad, ids.meta));
    const [row] = await waitFor(
      async () => {
        const rows = await outbound(badConv.id);
        return rows[0]?.status === 'failed' && rows;
      },
      { what: 'failed delivery' },
    );
    assert.equal(row.delivery_error_code, '131026');
    await delay(1500);
    assert.equal(meta.sends().length, before + 1, 'a rejection is not retried');
    const state = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${badConv.id}`, { key: tenant.key });
    assert.equal(state.body.status, 'open', 'the conversation survives a failed delivery');
  });

  it('Twilio: verifies X-Twilio-Signature on URL + sorted params, routes by To, replies form-encoded, records status callbacks', async () => {
    // Twilio's published example: the algorithm, not just our own round trip.
    assert.equal(
      twilioSignature(
        'https://mycompany.com/myapp.php?foo=1&bar=2',
        { CallSid: 'CA1234567890ABCDE', Caller: '+12349013030', Digits: '1234', From: '+12349013030', To: '+18005551212' },
        '12345',
      ),
      '0/KCTR6DLpKmkAf8muzZqo1nDgQ=',
    );
    const from = uniquePhone();
    const sid = `SM${randomBytes(16).toString('hex')}`;
    const params = {
      MessageSid: sid,
      SmsMessageSid: sid,
      AccountSid: TWILIO_SID,
      From: `whatsapp:${from}`,
      To: `whatsapp:${twilioNumber}`,
      Body: 'hi twilio',
      NumMedia: '0',
      ProfileName: 'C',
    };
    const before = await messageCount();
    const forged = await postTwilio(h.baseUrl, { ...params, Body: 'tampered' }, TWILIO_TOKEN, { url: `${h.baseUrl}/webhooks/other` });
    assert.equal(forged.status, 401);
    const wrong = await postTwilio(h.baseUrl, params, 'wrong-token');
    assert.equal(wrong.status, 401);
    assert.equal(await messageCount(), before);

    const ok = await postTwilio(h.baseUrl, params, TWILIO_TOKEN);
    assert.equal(ok.status, 200);
    assert.match(ok.text, /<Response>/);
    const sent = await waitFor(async () => twilio.sends().find((r) => r.body.To === `whatsapp:${from}`), {
      timeoutMs: 30_000,
      what: 'Twilio reply',
    });
    assert.equal(sent.body.From, `whatsapp:${twilioNumber}`);
    assert.equal(typeof sent.body.Body, 'string');
    assert.equal(sent.headers['content-type'], 'application/x-www-form-urlencoded');
    const conv = await waitFor(() => conversationOf(from, ids.twilio));
    assert.equal(conv.team, 'sales');
    const [row] = await waitFor(async () => {
      const rows = await outbound(conv.id);
      return rows[0]?.status === 'sent' && rows;
    });
    const sentSid = twilio.sentId((r) => r.body.To === `whatsapp:${from}`)!;
    assert.equal(row.provider_message_id, h.runtime.keyring.blindIndex(sentSid), 'stored as its keyed hash');

    const status = {
      MessageSid: sentSid,
      MessageStatus: 'undelivered',
      ErrorCode: '63016',
      AccountSid: TWILIO_SID,
      From: `whatsapp:${twilioNumber}`,
      To: `whatsapp:${from}`,
    };
    assert.equal((await postTwilio(h.baseUrl, status, TWILIO_TOKEN)).status, 200);
    const [after] = await outbound(conv.id);
    assert.equal(after.delivery_status, 'failed');
    assert.equal(after.delivery_error_code, '63016');
    assert.equal((await postTwilio(h.baseUrl, params, TWILIO_TOKEN)).status, 200, 're-delivery acknowledged');
  });

  it('Infobip: per-channel secret, results[] inbound and delivery reports', async () => {
    const a = uniquePhone();
    const b = uniquePhone();
    const result = (from: string, text: string) => ({
      from: from.slice(1),
      to: infobipNumber.slice(1),
      integrationType: 'WHATSAPP',
      receivedAt: '2025-09-10T10:30:00.000+0000',
      messageId: `ib-${randomBytes(6).toString('hex')}`,
      message: { type: 'TEXT', text },
      contact: { name: 'C' },
    });
    const payload = { results: [result(a, 'first'), result(b, 'second')], messageCount: 2, pendingMessageCount: 0 };
    const before = await messageCount();
    assert.equal((await postInfobip(h.baseUrl, ids.infobip, payload, 'wrong-secret-wrong-secret')).status, 401);
    assert.equal((await postInfobip(h.baseUrl, ids.infobip, payload, null)).status, 401);
    assert.equal((await postInfobip(h.baseUrl, ids.meta, payload, INFOBIP_SECRET)).status, 401, 'not an Infobip channel');
    assert.equal((await postInfobip(h.baseUrl, 'not-a-uuid', payload, INFOBIP_SECRET)).status, 401);
    assert.equal(await messageCount(), before);

    const ok = await postInfobip(h.baseUrl, ids.infobip, payload, INFOBIP_SECRET);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { accepted: 2, duplicates: 0, statuses: 0 });
    const sent = await waitFor(
      async () => {
        const s = infobip.sends().filter((r) => [a, b].includes(`+${r.body.to}`));
        return s.length === 2 && s;
      },
      { timeoutMs: 30_000, what: 'Infobip replies' },
    );
    for (const s of sent) {
      assert.equal(s.headers.authorization, 'App infobip-api-key');
      assert.equal(s.path, '/whatsapp/1/message/text');
      assert.equal(s.body.from, infobipNumber.slice(1));
      assert.match(s.body.messageId, /^prl-/);
    }
    const conv = await waitFor(() => conversationOf(a, ids.infobip));
    const [row] = await waitFor(async () => {
      const rows = await outbound(conv.id);
      return rows[0]?.status === 'sent' && rows;
    });
    const ibId = infobip.sentId((r) => `+${r.body.to}` === a)!;
    assert.equal(row.provider_message_id, h.runtime.keyring.blindIndex(ibId), 'stored as its keyed hash');
    const report = {
      results: [
        {
          bulkId: null,
          messageId: ibId,
          to: a.slice(1),
          sentAt: '2025-09-10T10:30:01.000+0000',
          doneAt: '2025-09-10T10:30:02.000+0000',
          status: { groupId: 3, groupName: 'DELIVERED', id: 5, name: 'DELIVERED_TO_HANDSET' },
          error: { groupId: 0, groupName: 'OK', id: 0, name: 'NO_ERROR', permanent: false },
          channel: 'WHATSAPP',
        },
      ],
    };
    const dr = await postInfobip(h.baseUrl, ids.infobip, report, INFOBIP_SECRET);
    assert.deepEqual(dr.body, { accepted: 0, duplicates: 0, statuses: 1 });
    assert.equal((await outbound(conv.id))[0].delivery_status, 'delivered');
  });

  it('a sandbox channel added later never takes over the default', async () => {
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, { key: TEST_ADMIN_KEY, body: { provider: 'sandbox' } });
    assert.equal(res.status, 201);
    const list = await h.request('GET', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key });
    assert.equal(list.body.channels.find((c: any) => c.id === ids.meta).is_default, true, 'a sandbox channel never takes the default');
  });
});
