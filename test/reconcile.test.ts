import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities/index.js';
import { DELIVERY_MAX_ATTEMPTS } from '../contracts/delivery.js';
import { eq } from 'drizzle-orm';
import type { Db } from '../core/db/client.js';
import { messages, outbox } from '../core/db/schema.js';
import { acceptInbound } from '../core/messaging/accept-inbound.js';
import { createProviders } from '../core/providers/index.js';
import { DEFAULT_PROVIDER_SETTINGS } from '../core/providers/http.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeProvider, type Held } from './helpers/fake-providers.js';
import { killHard, spawnWorker } from './helpers/processes.js';
import { metaPayload, metaStatus, metaText, postMeta, postTwilio } from './helpers/webhooks.js';

const TWILIO_SID = `AC${'c3'.repeat(16)}`;
const TWILIO_TOKEN = 'twilio-reconcile-token';
const META_SECRET = 'meta-reconcile-secret';
/** Parley's provider timeout in these tests: a held answer comes after it. */
const TIMEOUT_MS = 400;

describe('reconciliation: ambiguous provider sends are never blindly repeated', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  const twilio = new FakeProvider('twilio', { token: TWILIO_TOKEN, accountSid: TWILIO_SID });
  const infobip = new FakeProvider('infobip', { token: 'ib-key' });
  const pnid = String(randomBytes(4).readUInt32BE());
  const twilioFrom = uniquePhone();
  const ch = { meta: '', twilio: '', infobip: '' };
  let activities: ReturnType<typeof createActivities>;

  const addChannel = async (body: unknown) => {
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key, body });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id as string;
  };

  /**
   * A customer who just wrote, and a reply to them recorded and not yet sent. The test runs the
   * delivery activity itself: the message's outbox row goes in the same transaction, so no
   * conversation workflow answers it when a worker runs (the crash drill's).
   */
  async function queuedReply(channelId: string) {
    const to = uniquePhone();
    const accepted = await h.runtime.db.transaction(async (tx) => {
      const a = await acceptInbound(tx as unknown as Db, h.runtime.keyring, {
        tenantId: tenant.id,
        channelId,
        from: to,
        text: 'a question',
        timestamp: new Date().toISOString(),
      });
      await tx.delete(outbox).where(eq(outbox.messageId, a.messageId));
      return a;
    });
    const { rows } = await h.runtime.pool.query(
      `INSERT INTO messages (tenant_id, conversation_id, direction, dedupe_key, body_enc, status, in_reply_to, reply_source)
       VALUES ($1, $2, 'outbound', $3, $4, 'sending', ARRAY[$5]::uuid[], 'knowledge')
       RETURNING id, (SELECT contact_id FROM conversations WHERE id = $2) AS contact_id`,
      [
        tenant.id,
        accepted.conversationId,
        `reply:${accepted.messageId}`,
        h.runtime.keyring.encrypt('the answer', { tenantId: tenant.id, column: messages.bodyEnc }),
        accepted.messageId,
      ],
    );
    const input = {
      tenantId: tenant.id,
      messageId: rows[0].id,
      channelId,
      contactId: rows[0].contact_id,
      conversationId: accepted.conversationId,
    };
    return { to, input };
  }
  type Input = Parameters<typeof activities.deliverReply>[0];
  /** One attempt of the deliverReply activity, as Temporal runs its retries. */
  const attempt = (input: Input, n: number) =>
    new MockActivityEnvironment({ attempt: n }).run(activities.deliverReply, input) as ReturnType<typeof activities.deliverReply>;
  const row = async (id: string) =>
    (
      await h.runtime.pool.query(
        `SELECT status, delivery_status, delivery_error_code, provider_message_id, send_attempts, send_started_at FROM messages WHERE id = $1`,
        [id],
      )
    ).rows[0];
  const failsWith = (type: string) => (err: any) => {
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, false, 'retried by Temporal');
    return true;
  };
  /** How Parley stores a provider's message id (a keyed hash, core/messaging/provider-ids.ts). */
  const stored = (providerMessageId: string) => h.runtime.keyring.blindIndex(providerMessageId);

  /** Meta's status webhook for a message it took, echoing the send's biz_opaque_callback_data. */
  const metaCallback = (id: string, status: string, key: string | undefined) =>
    postMeta(h.baseUrl, metaPayload(pnid, { statuses: [{ ...metaStatus(id, status), biz_opaque_callback_data: key }] }), META_SECRET);

  before(async () => {
    await Promise.all([meta.start(), twilio.start(), infobip.start()]);
    h = await createHarness({ worker: false });
    tenant = await h.createTenant();
    ch.meta = await addChannel({
      provider: 'meta',
      credentials: { phone_number_id: pnid, access_token: 'meta-token', app_secret: META_SECRET, verify_token: 'v'.repeat(12) },
      api_base_url: meta.url,
    });
    ch.twilio = await addChannel({
      provider: 'twilio',
      credentials: { account_sid: TWILIO_SID, auth_token: TWILIO_TOKEN, from: `whatsapp:${twilioFrom}` },
      api_base_url: twilio.url,
    });
    ch.infobip = await addChannel({
      provider: 'infobip',
      credentials: { api_key: 'ib-key', webhook_secret: 'x'.repeat(16), sender: uniquePhone() },
      api_base_url: infobip.url,
    });
    const providers = createProviders({
      db: h.runtime.db,
      keyring: h.runtime.keyring,
      settings: { ...DEFAULT_PROVIDER_SETTINGS, timeoutMs: TIMEOUT_MS },
    });
    activities = createActivities({ db: h.runtime.db, keyring: h.runtime.keyring, providers });
  });
  after(async () => {
    await h.close();
    await Promise.all([meta.close(), twilio.close(), infobip.close()]);
  });

  it('Meta: a send accepted after the timeout waits for the status webhook, then is sent; the customer gets it once', async () => {
    const { to, input } = await queuedReply(ch.meta);
    const held = meta.holdNext();
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    const { message } = await held.accepted;
    held.release();
    const { rows } = await h.runtime.pool.query('SELECT dedupe_key FROM messages WHERE id = $1', [input.messageId]);
    assert.equal(message.callbackData, `${tenant.id}:${rows[0].dedupe_key}`, 'the send key rides as biz_opaque_callback_data');
    assert.ok((await row(input.messageId)).send_started_at, 'the call is marked: it may have gone out');

    // No status webhook yet: the retry waits (a short retry delay), it does not send again.
    await assert.rejects(attempt(input, 2), (err: any) => {
      failsWith('ProviderOutcomeUnknown')(err);
      assert.ok(Number(err.nextRetryDelay) >= 1000, 'asks again after a delay');
      return true;
    });
    assert.equal(meta.sends().length, 1);

    const cb = await metaCallback(message.id, 'sent', message.callbackData);
    assert.equal(cb.status, 200);
    const result = await attempt(input, 3);
    assert.equal(result.status, 'sent');
    const r = await row(input.messageId);
    assert.deepEqual([r.status, r.delivery_status, r.provider_message_id, r.send_attempts], ['sent', 'sent', stored(message.id), 1]);
    assert.equal(meta.deliveredTo(to).length, 1, 'exactly one message reached the customer');
    assert.equal(meta.sends().filter((s) => s.body.to === to.slice(1)).length, 1, 'exactly one request reached Meta');
  });

  it('Meta: without a status webhook the last attempt records `unknown`, never `failed` and never resent; a late webhook makes it sent', async () => {
    const { to, input } = await queuedReply(ch.meta);
    const held = meta.holdNext();
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    const { message } = await held.accepted;
    held.release();
    const last = await attempt(input, DELIVERY_MAX_ATTEMPTS);
    assert.equal(last.status, 'unknown');
    let r = await row(input.messageId);
    assert.deepEqual([r.status, r.delivery_status, r.delivery_error_code], ['unknown', 'unknown', 'outcome_unknown']);
    assert.equal(meta.deliveredTo(to).length, 1);
    assert.equal(meta.sends().filter((s) => s.body.to === to.slice(1)).length, 1, 'not resent');
    // A replayed or repeated delivery changes nothing.
    assert.equal((await attempt(input, 1)).status, 'unknown');
    const view = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${input.conversationId}`, { key: tenant.key });
    assert.equal(view.status, 200, JSON.stringify(view.body));
    const shown = view.body.messages.find((m: { id: string }) => m.id === input.messageId);
    assert.deepEqual([shown.status, shown.delivery_status, shown.delivery_error_code], ['unknown', 'unknown', 'outcome_unknown']);

    await metaCallback(message.id, 'delivered', message.callbackData);
    r = await row(input.messageId);
    assert.deepEqual([r.status, r.delivery_status, r.provider_message_id], ['sent', 'delivered', stored(message.id)]);
  });

  it("Meta: a status webhook echoing another tenant's key binds nothing", async () => {
    const { input } = await queuedReply(ch.meta);
    const { rows } = await h.runtime.pool.query('SELECT dedupe_key FROM messages WHERE id = $1', [input.messageId]);
    const cb = await metaCallback(`wamid.${randomBytes(6).toString('hex')}`, 'sent', `other-tenant:${rows[0].dedupe_key}`);
    assert.equal(cb.status, 200);
    assert.equal((await row(input.messageId)).provider_message_id, null);
  });

  it('Meta: a refused connection is retried at once (nothing reached Meta) and sent once', async () => {
    const { to, input } = await queuedReply(ch.meta);
    await meta.refuseConnections();
    try {
      await assert.rejects(attempt(input, 1), failsWith('ProviderUnavailable'));
    } finally {
      await meta.start();
    }
    const r = await row(input.messageId);
    assert.equal(r.send_started_at, null, 'surely not sent: the mark is cleared');
    assert.equal(r.send_attempts, 1);
    const result = await attempt(input, 2);
    assert.equal(result.status, 'sent');
    assert.equal(meta.deliveredTo(to).length, 1);
    assert.equal(meta.sends().filter((s) => s.body.to === to.slice(1)).length, 1);
  });

  it("Meta: a 5xx with Meta's own error is not sent and retried; a bare gateway 502 is unknown and waits", async () => {
    const first = await queuedReply(ch.meta);
    meta.failNext({ status: 500, body: { error: { code: 1, message: 'An unknown error occurred' } } });
    await assert.rejects(attempt(first.input, 1), failsWith('ProviderUnavailable'));
    assert.equal((await attempt(first.input, 2)).status, 'sent');
    assert.equal(meta.sends().filter((s) => s.body.to === first.to.slice(1)).length, 2);
    assert.equal(meta.deliveredTo(first.to).length, 1);

    const second = await queuedReply(ch.meta);
    meta.failNext({ status: 502, body: '<html>Bad Gateway</html>' });
    await assert.rejects(attempt(second.input, 1), failsWith('ProviderOutcomeUnknown'));
    await assert.rejects(attempt(second.input, 2), failsWith('ProviderOutcomeUnknown'));
    assert.equal(meta.sends().filter((s) => s.body.to === second.to.slice(1)).length, 1, 'not repeated while unknown');
  });

  it("Twilio: a send accepted after the timeout is found in Twilio's Messages list and sent, one request", async () => {
    const { to, input } = await queuedReply(ch.twilio);
    const held = twilio.holdNext();
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    const { message } = await held.accepted;
    held.release();
    const result = await attempt(input, 2);
    assert.equal(result.status, 'sent');
    const r = await row(input.messageId);
    assert.deepEqual([r.status, r.provider_message_id], ['sent', stored(message.id)]);
    assert.equal(twilio.sends().filter((s) => s.body.To === `whatsapp:${to}`).length, 1, 'exactly one request reached Twilio');
    assert.equal(twilio.deliveredTo(to).length, 1);
    const lookups = twilio.requests.filter((q) => q.method === 'GET');
    assert.match(lookups.at(-1)!.path, new RegExp(`To=whatsapp%3A%2B${to.slice(1)}`));
  });

  it('Twilio: a bare 5xx the provider never took is looked up, not found, and sent once', async () => {
    const { to, input } = await queuedReply(ch.twilio);
    twilio.failNext({ status: 503, body: 'Service Unavailable' });
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    assert.equal(twilio.deliveredTo(to).length, 0);
    assert.equal((await attempt(input, 2)).status, 'sent');
    assert.equal(twilio.deliveredTo(to).length, 1);
    assert.equal((await row(input.messageId)).send_attempts, 2);
  });

  it('Twilio: an earlier identical message already recorded is not taken for the unknown one', async () => {
    const earlier = await queuedReply(ch.twilio);
    assert.equal((await attempt(earlier.input, 1)).status, 'sent');
    // The same text again to the same customer, on a new reply whose first call never reached Twilio.
    const { rows } = await h.runtime.pool.query(
      `INSERT INTO messages (tenant_id, conversation_id, direction, dedupe_key, body_enc, status, in_reply_to, reply_source, send_attempts, send_started_at)
       SELECT tenant_id, conversation_id, 'outbound', 'reply:again', body_enc, 'sending', in_reply_to, reply_source, 1, now() - interval '5 seconds'
         FROM messages WHERE id = $1 RETURNING id`,
      [earlier.input.messageId],
    );
    const result = await attempt({ ...earlier.input, messageId: rows[0].id }, 2);
    assert.equal(result.status, 'sent');
    assert.equal(twilio.deliveredTo(earlier.to).length, 2, 'resent: the one found was the earlier reply');
    assert.notEqual((await row(rows[0].id)).provider_message_id, (await row(earlier.input.messageId)).provider_message_id);
  });

  it('Twilio: a refused connection is retried and sent once', async () => {
    const { to, input } = await queuedReply(ch.twilio);
    await twilio.refuseConnections();
    try {
      await assert.rejects(attempt(input, 1), failsWith('ProviderUnavailable'));
    } finally {
      await twilio.start();
    }
    assert.equal((await attempt(input, 2)).status, 'sent');
    assert.equal(twilio.deliveredTo(to).length, 1);
    assert.equal(
      twilio.requests.filter((q) => q.method === 'GET').filter((q) => q.path.includes(to.slice(1))).length,
      0,
      'no lookup needed',
    );
  });

  it('Twilio: a status callback carrying the send key binds the message', async () => {
    const { to, input } = await queuedReply(ch.twilio);
    const { rows } = await h.runtime.pool.query('SELECT dedupe_key FROM messages WHERE id = $1', [input.messageId]);
    const sid = `SM${randomBytes(16).toString('hex')}`;
    const url = `${h.baseUrl}/webhooks/twilio?send_key=${encodeURIComponent(`${tenant.id}:${rows[0].dedupe_key}`)}`;
    const params = {
      MessageSid: sid,
      MessageStatus: 'delivered',
      From: `whatsapp:${twilioFrom}`,
      To: `whatsapp:${to}`,
      AccountSid: TWILIO_SID,
    };
    const res = await postTwilio(h.baseUrl, params, TWILIO_TOKEN, { url, path: url.slice(h.baseUrl.length) });
    assert.equal(res.status, 200, res.text);
    const r = await row(input.messageId);
    assert.deepEqual([r.provider_message_id, r.delivery_status], [stored(sid), 'delivered']);
  });

  it('Infobip: a send accepted after the timeout is resent under the same messageId, which Infobip takes as the same message', async () => {
    const { to, input } = await queuedReply(ch.infobip);
    const held = infobip.holdNext();
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    const { message } = await held.accepted;
    held.release();
    assert.equal((await attempt(input, 2)).status, 'sent');
    const sends = infobip.sends().filter((s) => s.body.to === to.slice(1));
    assert.equal(sends.length, 2);
    assert.equal(sends[0].body.messageId, sends[1].body.messageId, 'the same messageId');
    assert.equal(infobip.deliveredTo(to).length, 1, 'one message reached the customer');
    assert.equal((await row(input.messageId)).provider_message_id, stored(message.id));
  });

  it('Infobip: a refused connection is retried and sent once', async () => {
    const { to, input } = await queuedReply(ch.infobip);
    await infobip.refuseConnections();
    try {
      await assert.rejects(attempt(input, 1), failsWith('ProviderUnavailable'));
    } finally {
      await infobip.start();
    }
    assert.equal((await attempt(input, 2)).status, 'sent');
    assert.equal(infobip.deliveredTo(to).length, 1);
    assert.equal(infobip.sends().filter((s) => s.body.to === to.slice(1)).length, 1);
  });

  it('a last attempt that timed out after a call may have gone out is `unknown`, not `failed`', async () => {
    const { input } = await queuedReply(ch.meta);
    const held = meta.holdNext();
    await assert.rejects(attempt(input, 1), failsWith('ProviderOutcomeUnknown'));
    await held.accepted;
    held.release();
    // The workflow's markDeliveryFailed after the activity's own timeout on its last attempt.
    await new MockActivityEnvironment().run(activities.markDeliveryFailed, { tenantId: tenant.id, messageId: input.messageId });
    const r = await row(input.messageId);
    assert.deepEqual([r.status, r.delivery_status], ['unknown', 'unknown']);

    const other = await queuedReply(ch.meta);
    await new MockActivityEnvironment().run(activities.markDeliveryFailed, { tenantId: tenant.id, messageId: other.input.messageId });
    const o = await row(other.input.messageId);
    assert.deepEqual([o.status, o.delivery_status], ['failed', 'failed'], 'never called: failed');
  });

  it('crash drill: a worker killed after Meta and Twilio took the reply and before Parley recorded it sends nothing twice after restart', async () => {
    const knowledge = { entries: [{ title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' }] };
    assert.equal((await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, { key: tenant.key, body: knowledge })).status, 200);
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const [metaCustomer, twilioCustomer] = [uniquePhone(), uniquePhone()];
      const held = { meta: meta.holdNext(metaCustomer), twilio: twilio.holdNext(twilioCustomer) };
      const first = spawnWorker(h);
      cleanups.push(() => killHard(first));
      const question = 'when are you open?';
      assert.equal(
        (await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(metaCustomer, question)] }), META_SECRET)).status,
        200,
      );
      const inbound = {
        MessageSid: `SM${randomBytes(16).toString('hex')}`,
        From: `whatsapp:${twilioCustomer}`,
        To: `whatsapp:${twilioFrom}`,
        Body: question,
        AccountSid: TWILIO_SID,
      };
      assert.equal((await postTwilio(h.baseUrl, inbound, TWILIO_TOKEN)).status, 200);

      // Both providers took the reply and hold their answers: the worker dies before it hears back.
      const within = <T>(p: Promise<T>, what: string) =>
        Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 60_000))]);
      const taken = {
        meta: (await within(held.meta.accepted, 'the reply at Meta')).message,
        twilio: (await within(held.twilio.accepted, 'the reply at Twilio')).message,
      };
      await killHard(first);
      for (const hold of Object.values(held) as Held[]) hold.release();
      const outbound = async (customer: string) =>
        (
          await h.runtime.pool.query(
            `SELECT m.status, m.provider_message_id, m.send_attempts FROM messages m JOIN conversations c ON c.id = m.conversation_id
               JOIN contacts k ON k.id = c.contact_id WHERE k.phone_hash = $1 AND m.direction = 'outbound'`,
            [h.runtime.keyring.blindIndex(customer)],
          )
        ).rows;
      assert.deepEqual(
        (await outbound(metaCustomer)).map((r) => r.status),
        ['sending'],
        'not recorded: the worker died first',
      );
      // Meta's status webhook echoes the send key; Twilio keeps the message in its Messages list.
      assert.equal((await metaCallback(taken.meta.id, 'sent', taken.meta.callbackData)).status, 200);

      const second = spawnWorker(h);
      cleanups.push(() => killHard(second));
      for (const customer of [metaCustomer, twilioCustomer]) {
        await waitFor(async () => (await outbound(customer))[0]?.status === 'sent', {
          timeoutMs: 150_000,
          intervalMs: 500,
          what: `the reply to the ${customer === metaCustomer ? 'Meta' : 'Twilio'} customer recorded after the restart`,
        });
      }
      assert.deepEqual(await outbound(metaCustomer), [{ status: 'sent', provider_message_id: stored(taken.meta.id), send_attempts: 1 }]);
      assert.deepEqual(await outbound(twilioCustomer), [
        { status: 'sent', provider_message_id: stored(taken.twilio.id), send_attempts: 1 },
      ]);
      assert.equal(meta.sends().filter((r) => r.body.to === metaCustomer.slice(1)).length, 1, 'exactly one request reached Meta');
      assert.equal(
        twilio.sends().filter((r) => r.body.To === `whatsapp:${twilioCustomer}`).length,
        1,
        'exactly one request reached Twilio',
      );
      assert.equal(meta.deliveredTo(metaCustomer).length + twilio.deliveredTo(twilioCustomer).length, 2);
    } finally {
      for (const c of cleanups.reverse()) await c();
    }
  });
});
