import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createHarness, TEST_ADMIN_KEY, waitFor, type Harness } from './helpers/harness.js';
import { enqueueJobs } from '../core/legacy-queue/jobs.js';

const LEASE_S = 2;

describe('legacy n8n queue: next-job, leases, tenant isolation', () => {
  let h: Harness;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  const nextJob = (key: string, query = '') => h.request('GET', `/queue/next-job${query}`, { key });
  const lookup = (tenant: string, n: number) => ({
    job_type: 'data_lookup',
    tenant_id: tenant,
    query: 'order status',
    parameters: { order_id: String(n), customer_phone: '+15550001111' },
    data_source: 'crm_api',
  });

  before(async () => {
    // No conversations here: the queue on its own, with a short lease to see re-delivery.
    h = await createHarness({ worker: false, env: { QUEUE_LEASE_S: String(LEASE_S) } });
    a = await h.createTenant();
    b = await h.createTenant();
  });
  after(() => h.close());

  it('delivers each of 1,000 jobs exactly once to 16 concurrent pollers', async () => {
    const tenant = await h.createTenant();
    const payloads = Array.from({ length: 1000 }, (_, i) => ({ jobType: 'data_lookup', payload: lookup(tenant.id, i) }));
    const ids = await enqueueJobs(h.runtime.db, h.runtime.keyring, tenant.id, payloads);
    const seen = new Map<string, number>();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (;;) {
          const res = await nextJob(tenant.key);
          if (res.status === 204) return;
          assert.equal(res.status, 200);
          assert.equal(res.body.status, 'processing');
          seen.set(res.body.job_id, (seen.get(res.body.job_id) ?? 0) + 1);
          const done = await h.request('POST', `/queue/jobs/${res.body.job_id}/complete`, { key: tenant.key, body: {} });
          assert.equal(done.status, 200);
        }
      }),
    );
    assert.equal(seen.size, 1000, 'every job delivered');
    assert.deepEqual([...new Set(seen.values())], [1], 'no job delivered twice');
    assert.deepEqual(new Set(seen.keys()), new Set(ids));
    const health = await h.request('GET', '/');
    assert.equal(health.body.queue.by_status.completed, 1000);
  });

  it('hands out the oldest job first, with its payload decrypted, and keeps PII out of the stored payload', async () => {
    const first = await h.request('POST', '/queue/jobs', { key: a.key, body: { ...lookup(a.id, 1), customer_context: { tier: 'gold' } } });
    assert.equal(first.status, 201);
    assert.equal(first.body.status, 'queued');
    const second = await h.request('POST', '/queue/jobs', { key: a.key, body: lookup(a.id, 2) });
    const stored = await h.runtime.pool.query('SELECT payload::text AS p, payload_enc FROM jobs WHERE id = $1', [first.body.job_id]);
    assert.ok(!stored.rows[0].p.includes('+1555'), 'no phone number in the clear payload');
    assert.ok(!stored.rows[0].p.includes('order status'));
    assert.ok(stored.rows[0].payload_enc.startsWith('v2.'));

    const got = await nextJob(a.key);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, {
      job_id: first.body.job_id,
      payload: { ...lookup(a.id, 1), customer_context: { tier: 'gold' } },
      status: 'processing',
    });
    const got2 = await nextJob(a.key, '?job_type=data_lookup');
    assert.equal(got2.body.job_id, second.body.job_id);
    assert.equal((await nextJob(a.key)).status, 204);
    for (const id of [first.body.job_id, second.body.job_id]) {
      assert.equal((await h.request('POST', `/queue/jobs/${id}/complete`, { key: a.key })).status, 200);
    }
  });

  it('filters by job_type', async () => {
    await h.request('POST', '/queue/jobs', { key: a.key, body: lookup(a.id, 3) });
    assert.equal((await nextJob(a.key, '?job_type=message')).status, 204);
    const got = await nextJob(a.key, '?job_type=data_lookup');
    assert.equal(got.status, 200);
    await h.request('POST', `/queue/jobs/${got.body.job_id}/fail`, { key: a.key, body: { error: 'CRM down' } });
    const view = await h.request('GET', `/queue/jobs/${got.body.job_id}`, { key: a.key });
    assert.equal(view.body.status, 'failed');
  });

  it('hands a job out again after the lease of a poller that vanished, then marks it dead after max attempts', async () => {
    const tenant = await h.createTenant();
    const [id] = await enqueueJobs(h.runtime.db, h.runtime.keyring, tenant.id, [
      { jobType: 'data_lookup', payload: lookup(tenant.id, 9), maxAttempts: 2 },
    ]);
    const claimed = await nextJob(tenant.key);
    assert.equal(claimed.body.job_id, id);
    // The poller vanishes: nobody else gets the job while its lease runs.
    assert.equal((await nextJob(tenant.key)).status, 204);
    const again = await waitFor(
      async () => {
        const r = await nextJob(tenant.key);
        return r.status === 200 && r;
      },
      { timeoutMs: LEASE_S * 1000 + 10_000, intervalMs: 200, what: 'the job to come back after its lease' },
    );
    assert.equal(again.body.job_id, id);
    let view = await h.request('GET', `/queue/jobs/${id}`, { key: tenant.key });
    assert.equal(view.body.attempts, 2);
    assert.equal(view.body.status, 'processing');
    // The second worker vanishes too: out of attempts, the job is dead and not handed out again.
    await delay(LEASE_S * 1000 + 200);
    assert.equal((await nextJob(tenant.key)).status, 204);
    view = await h.request('GET', `/queue/jobs/${id}`, { key: tenant.key });
    assert.equal(view.body.status, 'dead');
    const late = await h.request('POST', `/queue/jobs/${id}/complete`, { key: tenant.key });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'JOB_ALREADY_ANSWERED');
  });

  it('long-polls: a wait answers as soon as a job arrives', async () => {
    const tenant = await h.createTenant();
    const started = Date.now();
    const polling = nextJob(tenant.key, '?wait=20');
    await delay(500);
    const created = await h.request('POST', '/queue/jobs', { key: tenant.key, body: lookup(tenant.id, 7) });
    const got = await polling;
    assert.equal(got.status, 200);
    assert.equal(got.body.job_id, created.body.job_id);
    assert.ok(Date.now() - started < 10_000, 'woken by the enqueue, not by the wait running out');
    const empty = Date.now();
    assert.equal((await nextJob(tenant.key, '?wait=1')).status, 204);
    assert.ok(Date.now() - empty >= 900, 'an empty long-poll waits');
  });

  it("never shows or touches another tenant's jobs", async () => {
    const created = await h.request('POST', '/queue/jobs', { key: a.key, body: lookup(a.id, 11) });
    const jobId = created.body.job_id;
    assert.equal((await nextJob(b.key)).status, 204, "b's poll does not see a's job");
    for (const [method, url] of [
      ['GET', `/queue/jobs/${jobId}`],
      ['POST', `/queue/jobs/${jobId}/complete`],
      ['POST', `/queue/jobs/${jobId}/fail`],
    ] as const) {
      const res = await h.request(method, url, { key: b.key, ...(method === 'POST' ? { body: {} } : {}) });
      assert.equal(res.status, 404, `${method} ${url}`);
      assert.equal(res.body.error.code, 'JOB_NOT_FOUND');
    }
    const send = await h.request('POST', '/messages/send', {
      key: b.key,
      body: { to: '+15550001111', message: 'hi', tenant_id: b.id, job_id: jobId },
    });
    assert.equal(send.status, 404);
    const foreign = await h.request('POST', '/messages/send', { key: b.key, body: { to: '+15550001111', message: 'hi', tenant_id: a.id } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error.code, 'TENANT_MISMATCH');
    const foreignJob = await h.request('POST', '/queue/jobs', { key: b.key, body: lookup(a.id, 12) });
    assert.equal(foreignJob.status, 403);
    const admin = await nextJob(TEST_ADMIN_KEY);
    assert.equal(admin.status, 403, 'the queue belongs to a tenant key');
    assert.equal(admin.body.error.code, 'TENANT_KEY_REQUIRED');
    // a's job is untouched.
    const view = await h.request('GET', `/queue/jobs/${jobId}`, { key: a.key });
    assert.equal(view.body.status, 'queued');
    assert.equal(view.body.attempts, 0);
  });

  it('answers malformed requests with a 4xx naming the field', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/messages/send', { message: 'hi', tenant_id: a.id }, 400, /body\.to/],
      ['POST', '/messages/send', { to: '12345', message: 'hi', tenant_id: a.id }, 400, /body\.to: must be an E\.164/],
      ['POST', '/messages/send', { to: '+15550001111', message: '', tenant_id: a.id }, 400, /body\.message/],
      ['POST', '/messages/send', { to: '+15550001111', message: 'hi' }, 400, /body\.tenant_id/],
      ['POST', '/messages/send', { to: '+15550001111', message: 'hi', tenant_id: a.id, job_id: 'nope' }, 400, /body\.job_id/],
      ['POST', '/messages/send', '{"to":', 400, /JSON|json/],
      ['POST', '/queue/jobs', { job_type: 'data_lookup', tenant_id: a.id, data_source: 'crm' }, 400, /body\.query/],
      ['POST', '/queue/jobs/not-a-uuid/complete', {}, 400, /params\.job_id/],
      ['POST', '/queue/jobs/00000000-0000-4000-8000-000000000000/fail', { error: 5 }, 400, /body\.error/],
      ['GET', '/queue/next-job?wait=31', undefined, 400, /querystring\.wait/],
      ['GET', '/queue/next-job?job_type=Bad%20Type', undefined, 400, /querystring\.job_type/],
      ['PATCH', `/routes/tenants/${a.id}`, { mode: 'n8n' }, 400, /body\.mode/],
      ['PATCH', `/routes/tenants/${a.id}`, { mode: 'legacy_n8n', legacy_reply_timeout_s: 0 }, 400, /body\.legacy_reply_timeout_s/],
    ];
    for (const [method, url, body, status, message] of cases) {
      const res = await h.request(method, url, { key: a.key, body });
      assert.equal(res.status, status, `${method} ${url} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, message, `${method} ${url}`);
    }
    assert.equal((await h.request('POST', '/queue/jobs/00000000-0000-4000-8000-000000000000/complete', { key: a.key })).status, 404);
    assert.equal((await h.request('GET', '/queue/next-job')).status, 401);
  });

  it('switches a tenant between modes (admin scope) and reports the timeout', async () => {
    const res = await h.request('PATCH', `/routes/tenants/${b.id}`, {
      key: b.key,
      body: { mode: 'legacy_n8n', legacy_reply_timeout_s: 45 },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { id: b.id, mode: 'legacy_n8n', legacy_reply_timeout_s: 45 });
    const back = await h.request('PATCH', `/routes/tenants/${b.id}`, { key: TEST_ADMIN_KEY, body: { mode: 'native' } });
    assert.deepEqual(back.body, { id: b.id, mode: 'native', legacy_reply_timeout_s: 45 });
    const other = await h.request('PATCH', `/routes/tenants/${b.id}`, { key: a.key, body: { mode: 'native' } });
    assert.equal(other.status, 404);
    const openapi = await h.request('GET', '/openapi.json');
    for (const path of [
      '/queue/next-job',
      '/messages/send',
      '/queue/jobs/{job_id}/complete',
      '/queue/jobs/{job_id}/fail',
      '/routes/tenants/{tenant_id}',
    ]) {
      assert.ok(openapi.body.paths[path], `${path} in the OpenAPI document`);
    }
  });
});
