import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { acceptInbound } from '../core/messaging/accept-inbound.js';
import { enqueueTurnJob } from '../core/legacy-queue/jobs.js';
import { slotSpacingSeconds } from '../core/providers/pacing.js';
import { DEFAULT_PACING } from '../core/messaging/outbound.js';
import { createHarness, uniquePhone, type Harness } from './helpers/harness.js';
import { FakeProvider, metaChannelBody } from './helpers/fake-providers.js';

/**
 * The legacy `POST /messages/send` goes out like every other send: inside the 24-hour window
 * as text, outside it as the channel's reopen template or not at all (409), in the number's
 * send slot, and with the provider called only after the outbound record is committed.
 */
describe('legacy /messages/send through the outbound path', () => {
  let h: Harness;
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  let observer: pg.Client;

  /** A tenant whose default channel is a Meta number on the fake provider. */
  async function metaTenant(opts: { template?: boolean; rate?: number } = {}) {
    const t = await h.createTenant();
    const res = await h.request('POST', `/routes/tenants/${t.id}/channels`, {
      key: t.key,
      body: metaChannelBody(meta.url, {
        ...(opts.rate ? { rate_per_second: opts.rate } : {}),
        ...(opts.template ? { template: { name: 'reopen_conversation', language: 'en_US' } } : {}),
      }),
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return { ...t, channelId: res.body.id as string };
  }

  /** The customer's last message, `ageHours` ago, on the tenant's channel. */
  /** A legacy turn job for the customer's message, as the conversation workflow enqueues it. */
  const turnJob = (t: { id: string }, c: { conversationId: string; messageId: string; phone: string }) =>
    enqueueTurnJob(h.runtime.db, h.runtime.keyring, {
      tenantId: t.id,
      conversationId: c.conversationId,
      workflowId: `wf-${randomBytes(4).toString('hex')}`,
      replyKey: `reply:${c.messageId}`,
      messageIds: [c.messageId],
      payload: { from: c.phone, message: 'a question', tenant_id: t.id, timestamp: new Date().toISOString() },
    });

  async function customerWrote(t: { id: string; channelId: string }, ageHours: number, from = uniquePhone()) {
    const accepted = await acceptInbound(h.runtime.db, h.runtime.keyring, {
      tenantId: t.id,
      channelId: t.channelId,
      from,
      text: 'a question',
      timestamp: new Date().toISOString(),
    });
    await h.runtime.pool.query(`UPDATE conversations SET last_inbound_at = now() - make_interval(hours => $2) WHERE id = $1`, [
      accepted.conversationId,
      ageHours,
    ]);
    return { phone: from, ...accepted };
  }

  const send = (t: { id: string; key: string }, body: Record<string, unknown>) =>
    h.request('POST', '/messages/send', { key: t.key, body: { tenant_id: t.id, ...body } });
  const sendsTo = (phone: string) => meta.sends().filter((r) => r.body.to === phone.replace('+', ''));
  const outboundRows = async (tenantId: string) =>
    (
      await h.runtime.pool.query<{ status: string; reply_source: string }>(
        `SELECT status, reply_source FROM messages WHERE tenant_id = $1 AND direction = 'outbound'`,
        [tenantId],
      )
    ).rows;

  before(async () => {
    await meta.start();
    // No worker: the sends under test are the API's own; no conversation answers in between.
    h = await createHarness({ worker: false });
    observer = new pg.Client({ connectionString: h.databaseUrl });
    await observer.connect();
  });
  after(async () => {
    await observer.end();
    await h.close();
    await meta.close();
  });

  it('inside the window sends the free text', async () => {
    const t = await metaTenant();
    const c = await customerWrote(t, 1);
    const res = await send(t, { to: c.phone, message: 'Your order shipped' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, 'sent');
    const [req] = sendsTo(c.phone);
    assert.equal(req.body.type, 'text');
    assert.equal(req.body.text.body, 'Your order shipped');
    assert.deepEqual(await outboundRows(t.id), [{ status: 'sent', reply_source: 'n8n' }]);
  });

  it("outside the window sends the channel's reopen template instead, and says so", async () => {
    const t = await metaTenant({ template: true });
    const c = await customerWrote(t, 25);
    const res = await send(t, { to: c.phone, message: 'Your order shipped' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, 'template_sent', 'never "sent" for free text that did not go out');
    const reqs = sendsTo(c.phone);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].body.type, 'template');
    assert.equal(reqs[0].body.template.name, 'reopen_conversation');
    assert.deepEqual(await outboundRows(t.id), [{ status: 'sent', reply_source: 'n8n:template' }]);
  });

  it('outside the window without a template is 409 WINDOW_CLOSED and sends and records nothing', async () => {
    const t = await metaTenant();
    const stale = await customerWrote(t, 25);
    const res = await send(t, { to: stale.phone, message: 'Your order shipped' });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'WINDOW_CLOSED');
    assert.match(res.body.error.message, /^to: /);

    // A number that never wrote has no window either; its contact is not created by the refusal.
    const stranger = uniquePhone();
    const res2 = await send(t, { to: stranger, message: 'hello' });
    assert.equal(res2.status, 409);
    assert.equal(res2.body.error.code, 'WINDOW_CLOSED');
    assert.equal(sendsTo(stale.phone).length + sendsTo(stranger).length, 0, 'nothing sent');
    assert.deepEqual(await outboundRows(t.id), [], 'nothing recorded');
    const contacts = await h.runtime.pool.query('SELECT count(*)::int AS n FROM contacts WHERE tenant_id = $1', [t.id]);
    assert.equal(contacts.rows[0].n, 1, 'only the customer who wrote');
  });

  it("a job's answer outside the window is 409 WINDOW_CLOSED and leaves the job open", async () => {
    const t = await metaTenant();
    const c = await customerWrote(t, 25);
    const jobId = await turnJob(t, c);
    const res = await send(t, { to: c.phone, message: 'the answer', job_id: jobId });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'WINDOW_CLOSED');
    assert.equal(sendsTo(c.phone).length, 0);
    const job = await h.runtime.pool.query('SELECT status, reply_message_id FROM jobs WHERE id = $1', [jobId]);
    assert.deepEqual(job.rows[0], { status: 'queued', reply_message_id: null });
  });

  it('calls the provider only after the outbound record and the answered job are committed', async () => {
    const t = await metaTenant();
    const c = await customerWrote(t, 1);
    const jobId = await turnJob(t, c);
    // While the fake provider handles the request, a separate connection sees only what is committed:
    // the old path, which called the provider inside its transaction, showed neither row here.
    const seen: { message?: string; job?: string } = {};
    meta.beforeAnswer = async (req) => {
      if (req.body.to !== c.phone.replace('+', '')) return;
      const m = await observer.query(`SELECT status FROM messages WHERE tenant_id = $1 AND dedupe_key = $2`, [
        t.id,
        `reply:${c.messageId}`,
      ]);
      const j = await observer.query('SELECT status FROM jobs WHERE id = $1', [jobId]);
      seen.message = m.rows[0]?.status;
      seen.job = j.rows[0]?.status;
    };
    try {
      const res = await send(t, { to: c.phone, message: 'the answer', job_id: jobId });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    } finally {
      meta.beforeAnswer = undefined;
    }
    assert.deepEqual(seen, { message: 'sending', job: 'completed' });
    const row = await h.runtime.pool.query(`SELECT status FROM messages WHERE tenant_id = $1 AND dedupe_key = $2`, [
      t.id,
      `reply:${c.messageId}`,
    ]);
    assert.equal(row.rows[0].status, 'sent');
  });

  it('a provider failure reopens the job and removes its unsent answer, so n8n can retry', async () => {
    const t = await metaTenant();
    const c = await customerWrote(t, 1);
    const jobId = await turnJob(t, c);
    meta.failNext({ status: 400, body: { error: { code: 131026, message: 'Message undeliverable' } } });
    const failed = await send(t, { to: c.phone, message: 'the answer', job_id: jobId });
    assert.equal(failed.status, 502);
    assert.equal(failed.body.error.code, 'PROVIDER_FAILED');
    const job = await h.runtime.pool.query('SELECT status, reply_message_id FROM jobs WHERE id = $1', [jobId]);
    assert.deepEqual(job.rows[0], { status: 'queued', reply_message_id: null });
    assert.deepEqual(await outboundRows(t.id), []);

    const retried = await send(t, { to: c.phone, message: 'the answer', job_id: jobId });
    assert.equal(retried.status, 200);
    assert.deepEqual(await outboundRows(t.id), [{ status: 'sent', reply_source: 'n8n' }]);
    assert.equal((await send(t, { to: c.phone, message: 'again', job_id: jobId })).status, 409, 'a job answers once');
  });

  it("is paced to the number's rate through its send slot", async () => {
    const rate = 4;
    const t = await metaTenant({ rate });
    const customers = await Promise.all(Array.from({ length: 8 }, () => customerWrote(t, 1)));
    const results = await Promise.all(customers.map((c, i) => send(t, { to: c.phone, message: `update ${i}` })));
    assert.deepEqual(
      results.map((r) => r.status),
      customers.map(() => 200),
    );
    const times = customers.map((c) => sendsTo(c.phone)[0].at).sort((a, b) => a - b);
    // Slots are spaced by the channel's interval: 8 sends at 4/s take at least 7 intervals.
    const spacingMs = slotSpacingSeconds(rate, DEFAULT_PACING.toleranceMs) * 1000;
    assert.ok(
      times[times.length - 1] - times[0] >= 7 * spacingMs - 2 * DEFAULT_PACING.toleranceMs,
      `spread ${times.at(-1)! - times[0]} ms`,
    );
    const slot = await h.runtime.pool.query('SELECT count(*)::int AS n FROM channel_send_pacing WHERE channel_id = $1', [t.channelId]);
    assert.equal(slot.rows[0].n, 1, "the number's slot row was used");
  });
});
