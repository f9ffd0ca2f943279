import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { legacyTenant as legacyN8nTenant, simulatedN8n } from './helpers/n8n.js';

const FALLBACK = 'Thanks! A member of our team will answer shortly.';

describe('legacy n8n mode: conversation turns answered by n8n workers', () => {
  let h: Harness;

  before(async () => {
    h = await createHarness();
  });
  after(() => h.close());

  const legacyTenant = (timeoutS: number) => legacyN8nTenant(h, FALLBACK, timeoutS);

  // A simulated n8n over real HTTP; `h` is set in before().
  const pollJob = (key: string, waitS?: number) => simulatedN8n(h.baseUrl).pollJob(key, waitS);
  const n8nSend = (key: string, body: Record<string, unknown>) => simulatedN8n(h.baseUrl).send(key, body);
  const inbound = (t: { id: string; key: string }, from: string, message: string) =>
    h.inbound(t.key, { from, message, tenant_id: t.id, timestamp: new Date().toISOString() });
  const sandboxAfter = async (t: { id: string; key: string }, to: string, n = 1) =>
    waitFor(
      async () => {
        const m = await h.sandbox(t.id, t.key, to);
        return m.length >= n && m;
      },
      { timeoutMs: 30_000, what: `${n} message(s) to the customer` },
    );

  it("sends the customer exactly n8n's reply, and no fallback", async () => {
    const timeoutS = 6;
    const t = await legacyTenant(timeoutS);
    const customer = uniquePhone();
    const polling = pollJob(t.key);
    const accepted = await inbound(t, customer, 'Where is my order 12345?');
    assert.equal(accepted.status, 202);

    const job = await polling;
    assert.ok(job, 'n8n got a job');
    assert.equal(job.status, 'processing');
    assert.deepEqual(Object.keys(job.payload).sort(), ['from', 'message', 'tenant_id', 'timestamp'], "the seed's payload shape");
    assert.equal(job.payload.from, customer);
    assert.equal(job.payload.message, 'Where is my order 12345?');
    assert.equal(job.payload.tenant_id, t.id);
    assert.ok(!Number.isNaN(Date.parse(job.payload.timestamp)));

    const reply = 'Order 12345 shipped yesterday (from n8n).';
    const sent = await n8nSend(t.key, { to: job.payload.from, message: reply, tenant_id: t.id, job_id: job.job_id });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.status, 'sent');
    assert.ok(sent.body.message_id);

    const again = await n8nSend(t.key, { to: job.payload.from, message: 'a second answer', tenant_id: t.id, job_id: job.job_id });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'JOB_ALREADY_ANSWERED');

    // Past the timeout: still exactly the one reply, no fallback.
    await delay(timeoutS * 1000 + 2000);
    const messages = await h.sandbox(t.id, t.key, customer);
    assert.deepEqual(
      messages.map((m: any) => m.text),
      [reply],
    );
    assert.deepEqual(messages[0].in_reply_to, [accepted.body.message_id]);

    const view = await h.request('GET', `/queue/jobs/${job.job_id}`, { key: t.key });
    assert.equal(view.body.status, 'completed');
    assert.equal(view.body.conversation_id, accepted.body.conversation_id);
    const conv = await h.request('GET', `/routes/tenants/${t.id}/conversations/${accepted.body.conversation_id}`, { key: t.key });
    assert.deepEqual(
      conv.body.messages.map((m: any) => [m.direction, m.text, m.status, m.reply_source]),
      [
        ['inbound', 'Where is my order 12345?', 'answered', null],
        ['outbound', reply, 'sent', 'n8n'],
      ],
    );
    const stored = await h.runtime.pool.query('SELECT payload::text AS p FROM jobs WHERE id = $1', [job.job_id]);
    assert.ok(!stored.rows[0].p.includes(customer.slice(1)) && !stored.rows[0].p.includes('12345'), 'stored payload has no PII');
    assert.ok(!h.logs.text().includes(customer.slice(1)), 'no phone number in the logs');
    assert.ok(!h.logs.text().includes('shipped yesterday'), 'no message text in the logs');
  });

  it('sends the fallback when n8n stays silent past the timeout; a late send is 409 and sends nothing', async () => {
    const t = await legacyTenant(2);
    const customer = uniquePhone();
    const polling = pollJob(t.key);
    await inbound(t, customer, 'Is anyone there?');
    const job = await polling;
    assert.ok(job, 'n8n claimed the job, then went quiet');
    const sent = await sandboxAfter(t, customer);
    assert.deepEqual(
      sent.map((m: any) => m.text),
      [FALLBACK],
    );
    const view = await waitFor(async () => {
      const v = await h.request('GET', `/queue/jobs/${job.job_id}`, { key: t.key });
      return v.body.status === 'timed_out' && v;
    });
    assert.equal(view.body.status, 'timed_out');

    const late = await n8nSend(t.key, { to: customer, message: 'Sorry for the wait!', tenant_id: t.id, job_id: job.job_id });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'JOB_ALREADY_ANSWERED');
    await delay(1000);
    assert.deepEqual(
      (await h.sandbox(t.id, t.key, customer)).map((m: any) => m.text),
      [FALLBACK],
    );
  });

  it('sends the fallback at once when n8n reports failure, and nothing when n8n completes the job itself', async () => {
    const t = await legacyTenant(60);
    const failing = uniquePhone();
    const p1 = pollJob(t.key);
    const started = Date.now();
    await inbound(t, failing, 'Can you check my balance?');
    const job1 = await p1;
    assert.ok(job1);
    const failed = await h.request('POST', `/queue/jobs/${job1.job_id}/fail`, { key: t.key, body: { error: 'CRM unreachable' } });
    assert.equal(failed.status, 200);
    assert.deepEqual(failed.body, { job_id: job1.job_id, status: 'failed' });
    const sent = await sandboxAfter(t, failing);
    assert.deepEqual(
      sent.map((m: any) => m.text),
      [FALLBACK],
    );
    assert.ok(Date.now() - started < 30_000, 'no wait for the 60 s timeout');

    const quiet = await legacyTenant(2);
    const other = uniquePhone();
    const p2 = pollJob(quiet.key);
    await inbound(quiet, other, 'Book me for Tuesday');
    const job2 = await p2;
    assert.ok(job2);
    const done = await h.request('POST', `/queue/jobs/${job2.job_id}/complete`, { key: quiet.key, body: { result: { booked: true } } });
    assert.equal(done.status, 200);
    await delay(4000);
    assert.deepEqual(await h.sandbox(quiet.id, quiet.key, other), [], 'n8n answered its own way: no fallback');
  });

  it('gives each customer exactly one message when n8n answers right at the timeout', async () => {
    const timeoutS = 2;
    const t = await legacyTenant(timeoutS);
    const customers = Array.from({ length: 8 }, () => uniquePhone());
    // Each answer is sent from 400 ms before to 300 ms after its turn's timeout (counted from
    // the claim, which follows the enqueue at once): some sends win, the rest lose to the fallback.
    const sends: Promise<{ status: number; body: any }>[] = [];
    for (const [i, c] of customers.entries()) {
      const p = pollJob(t.key);
      await inbound(t, c, `question ${i}`);
      const job = await p;
      assert.ok(job);
      sends.push(
        delay(timeoutS * 1000 - 400 + i * 100).then(() =>
          n8nSend(t.key, { to: job.payload.from, message: `n8n answer ${i}`, tenant_id: t.id, job_id: job.job_id }),
        ),
      );
    }
    const results = await Promise.all(sends);
    for (const [i, c] of customers.entries()) {
      const status = results[i].status;
      assert.ok(status === 200 || status === 409, `send ${i}: ${status}`);
      const [only] = await sandboxAfter(t, c);
      await delay(300);
      const all = await h.sandbox(t.id, t.key, c);
      assert.equal(all.length, 1, `customer ${i} gets exactly one message`);
      assert.equal(only.text, status === 200 ? `n8n answer ${i}` : FALLBACK, `customer ${i}: the winner's message`);
    }
  });

  it('refuses a job reply to a different number, and goes back to native answers', async () => {
    const t = await legacyTenant(30);
    const customer = uniquePhone();
    const p = pollJob(t.key);
    await inbound(t, customer, 'hello');
    const job = await p;
    assert.ok(job);
    const wrong = await n8nSend(t.key, { to: uniquePhone(), message: 'hi', tenant_id: t.id, job_id: job.job_id });
    assert.equal(wrong.status, 400);
    assert.match(wrong.body.error.message, /^to: /);
    assert.equal((await n8nSend(t.key, { to: customer, message: 'Hi from n8n', tenant_id: t.id, job_id: job.job_id })).status, 200);

    const native = await h.request('PATCH', `/routes/tenants/${t.id}`, { key: t.key, body: { mode: 'native' } });
    assert.equal(native.status, 200);
    await inbound(t, customer, 'and again');
    const sent = await sandboxAfter(t, customer, 2);
    assert.deepEqual(
      sent.map((m: any) => m.text),
      ['Hi from n8n', FALLBACK],
      'native mode answers without a job',
    );
    assert.equal(await pollJob(t.key, 0), null);
  });

  it('sends an unprompted message (no job) and records it in the conversation', async () => {
    // Free text needs the 24-hour window open: the customer wrote a moment ago (a job nobody polls).
    const t = await legacyTenant(30);
    const customer = uniquePhone();
    assert.equal((await inbound(t, customer, 'hello')).status, 202);
    const sent = await n8nSend(t.key, { to: customer, message: 'Your weekly update', tenant_id: t.id });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.status, 'sent');
    assert.deepEqual(
      (await h.sandbox(t.id, t.key, customer)).map((m: any) => m.text),
      ['Your weekly update'],
    );
    const list = await h.request('GET', `/routes/tenants/${t.id}/conversations`, { key: t.key });
    const conv = list.body.conversations.find((c: any) => c.contact_phone === customer);
    const detail = await h.request('GET', `/routes/tenants/${t.id}/conversations/${conv.id}`, { key: t.key });
    assert.deepEqual(
      detail.body.messages.map((m: any) => [m.direction, m.text]),
      [
        ['inbound', 'hello'],
        ['outbound', 'Your weekly update'],
      ],
    );
  });
});
