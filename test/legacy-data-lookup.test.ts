import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { legacyTenant, simulatedN8n } from './helpers/n8n.js';

const FALLBACK = 'Thanks! A member of our team will answer shortly.';

describe('legacy n8n mode: turns an intent recognises become data_lookup jobs', () => {
  let h: Harness;

  before(async () => {
    h = await createHarness();
  });
  after(() => h.close());

  /** A legacy tenant with the seed's order-status intent; n8n does the lookup, so the source is never called. */
  async function legacyTenantWithIntent(timeoutS: number) {
    const t = await legacyTenant(h, FALLBACK, timeoutS);
    const sources = await h.request('PUT', `/routes/tenants/${t.id}/data-sources`, {
      key: t.key,
      body: {
        data_sources: [
          {
            id: 'crm_api',
            name: 'CRM',
            type: 'rest_api',
            connection: { base_url: 'http://127.0.0.1:9/api' },
            endpoints: { order_status: '/orders/{order_id}' },
          },
        ],
      },
    });
    assert.equal(sources.status, 200, JSON.stringify(sources.body));
    const intents = await h.request('PUT', `/routes/tenants/${t.id}/intents`, {
      key: t.key,
      body: {
        intents: [
          {
            id: 'order_status',
            patterns: ['order #?(?<order_id>\\d+)'],
            data_source: 'crm_api',
            query: 'order_status',
            params: ['order_id', 'customer_phone'],
            reply_template: 'Order {{order_id}}: {{status}}',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    return t;
  }

  // A simulated n8n over real HTTP; `h` is set in before().
  const pollJob = (key: string, waitS?: number) => simulatedN8n(h.baseUrl).pollJob(key, waitS);
  const n8nSend = (key: string, body: Record<string, unknown>) => simulatedN8n(h.baseUrl).send(key, body);
  const inbound = (t: { id: string; key: string }, from: string, message: string) =>
    h.inbound(t.key, { from, message, tenant_id: t.id, timestamp: new Date().toISOString() });

  it("gives n8n the seed's data_lookup job and sends the customer its answer exactly once", async () => {
    const timeoutS = 6;
    const t = await legacyTenantWithIntent(timeoutS);
    const customer = uniquePhone();
    const polling = pollJob(t.key);
    const accepted = await inbound(t, customer, 'What is the status of order #12345?');
    assert.equal(accepted.status, 202);

    const job = await polling;
    assert.ok(job, 'n8n got a job');
    assert.deepEqual(job.payload, {
      job_type: 'data_lookup',
      tenant_id: t.id,
      query: 'order_status',
      parameters: { order_id: '12345', customer_phone: customer },
      data_source: 'crm_api',
      from: customer,
      message: 'What is the status of order #12345?',
      timestamp: job.payload.timestamp,
    });
    assert.ok(!Number.isNaN(Date.parse(job.payload.timestamp)));
    const view = await h.request('GET', `/queue/jobs/${job.job_id}`, { key: t.key });
    assert.equal(view.body.job_type, 'data_lookup');

    // n8n looked the order up in its own CRM and answers as for a message job.
    const reply = 'Your order #12345 has been shipped! Tracking: UPS123456';
    const sent = await n8nSend(t.key, { to: job.payload.parameters.customer_phone, message: reply, tenant_id: t.id, job_id: job.job_id });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const again = await n8nSend(t.key, { to: customer, message: 'a second answer', tenant_id: t.id, job_id: job.job_id });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'JOB_ALREADY_ANSWERED');

    // Past the timeout: exactly n8n's reply, no fallback, and one job for the turn.
    await delay(timeoutS * 1000 + 2000);
    const messages = await h.sandbox(t.id, t.key, customer);
    assert.deepEqual(
      messages.map((m: any) => m.text),
      [reply],
    );
    assert.deepEqual(messages[0].in_reply_to, [accepted.body.message_id]);
    const rows = await h.runtime.pool.query('SELECT job_type, status, payload::text AS p FROM jobs WHERE tenant_id = $1', [t.id]);
    assert.deepEqual(
      rows.rows.map((r) => [r.job_type, r.status]),
      [['data_lookup', 'completed']],
    );
    assert.ok(!rows.rows[0].p.includes(customer.slice(1)) && !rows.rows[0].p.includes('12345'), 'stored payload has no PII');
    assert.ok(!h.logs.text().includes(customer.slice(1)), 'no phone number in the logs');
  });

  it('still gives n8n a message job for a turn no intent recognises, and falls back on silence', async () => {
    const t = await legacyTenantWithIntent(2);
    const customer = uniquePhone();
    const polling = pollJob(t.key);
    assert.equal((await inbound(t, customer, 'Do you open on Sundays?')).status, 202);
    const job = await polling;
    assert.ok(job, 'n8n got a job');
    assert.deepEqual(Object.keys(job.payload).sort(), ['from', 'message', 'tenant_id', 'timestamp']);
    assert.equal(job.payload.message, 'Do you open on Sundays?');
    const view = await h.request('GET', `/queue/jobs/${job.job_id}`, { key: t.key });
    assert.equal(view.body.job_type, 'message');

    // n8n stays silent: the fallback goes out once, like any legacy turn.
    const messages = await waitFor(
      async () => {
        const m = await h.sandbox(t.id, t.key, customer);
        return m.length > 0 && m;
      },
      { timeoutMs: 30_000, what: 'the fallback' },
    );
    assert.deepEqual(
      messages.map((m: any) => m.text),
      [FALLBACK],
    );
  });
});
