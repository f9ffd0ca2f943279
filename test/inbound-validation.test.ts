import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, type Harness } from './helpers/harness.js';

/** Row counts of every table an inbound message could touch. */
async function counts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, number> = {};
    for (const t of ['contacts', 'conversations', 'messages', 'outbox', 'sandbox_messages']) {
      out[t] = Number((await client.query(`SELECT count(*) FROM ${t}`)).rows[0].count);
    }
    return out;
  } finally {
    await client.end();
  }
}

describe('inbound webhook: bad input and auth', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  let other: { id: string; key: string };
  const good = () => ({ from: uniquePhone(), message: 'hello', tenant_id: tenant.id, timestamp: '2025-09-10T10:30:00Z' });

  before(async () => {
    h = await createHarness({ worker: false });
    tenant = await h.createTenant();
    other = await h.createTenant();
  });
  after(() => h.close());

  const cases: [string, (b: Record<string, unknown>) => unknown, RegExp][] = [
    ['missing from', ({ from: _f, ...rest }) => rest, /^body\.from: /],
    ['missing message', ({ message: _m, ...rest }) => rest, /^body\.message: /],
    ['missing timestamp', ({ timestamp: _t, ...rest }) => rest, /^body\.timestamp: /],
    ['from not E.164', (b) => ({ ...b, from: '5550001' }), /^body\.from: must be an E\.164/],
    ['from wrong type', (b) => ({ ...b, from: 15550001 }), /^body\.from: /],
    ['message wrong type', (b) => ({ ...b, message: ['hi'] }), /^body\.message: /],
    ['empty message', (b) => ({ ...b, message: '' }), /^body\.message: must not be empty/],
    ['oversized message', (b) => ({ ...b, message: 'x'.repeat(4097) }), /^body\.message: must be at most 4096/],
    ['bad timestamp', (b) => ({ ...b, timestamp: 'yesterday' }), /^body\.timestamp: must be an ISO-8601/],
    ['bad tenant id', (b) => ({ ...b, tenant_id: 'Not A Slug!' }), /^body\.tenant_id: /],
    ['not an object', () => [1, 2, 3], /^body: /],
  ];

  for (const [name, mutate, message] of cases) {
    it(`${name} → 400 naming the field, nothing stored`, async () => {
      const before = await counts(h.databaseUrl);
      const res = await h.request('POST', '/webhook/inbound', { key: tenant.key, body: mutate(good()) });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.match(res.body.error.message, message);
      assert.deepEqual(await counts(h.databaseUrl), before);
    });
  }

  it('malformed JSON → 400 INVALID_JSON', async () => {
    const res = await h.request('POST', '/webhook/inbound', { key: tenant.key, body: '{"from": ' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'INVALID_JSON');
  });

  it('unknown tenant → 404 naming tenant_id, nothing stored', async () => {
    const before = await counts(h.databaseUrl);
    const res = await h.request('POST', '/webhook/inbound', { key: TEST_ADMIN_KEY, body: { ...good(), tenant_id: 'no-such-tenant' } });
    assert.equal(res.status, 404);
    assert.match(res.body.error.message, /^tenant_id: /);
    assert.deepEqual(await counts(h.databaseUrl), before);
  });

  it('no key → 401, wrong key → 401', async () => {
    const none = await h.request('POST', '/webhook/inbound', { body: good() });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'UNAUTHORIZED');
    const wrong = await h.request('POST', '/webhook/inbound', { key: 'prl_not_a_real_key', body: good() });
    assert.equal(wrong.status, 401);
  });

  it("another tenant's key → 404, nothing stored", async () => {
    const before = await counts(h.databaseUrl);
    const res = await h.request('POST', '/webhook/inbound', { key: other.key, body: good() });
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'TENANT_NOT_FOUND');
    const sandbox = await h.request('GET', `/routes/tenants/${tenant.id}/sandbox/messages?to=%2B15550001`, { key: other.key });
    assert.equal(sandbox.status, 404);
    assert.deepEqual(await counts(h.databaseUrl), before);
  });

  it('tenant creation validates and rejects duplicates', async () => {
    const bad = await h.request('POST', '/routes/tenants', { key: TEST_ADMIN_KEY, body: { id: 'A', name: 'x' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^body\.id: must be a slug/);
    const dup = await h.request('POST', '/routes/tenants', { key: TEST_ADMIN_KEY, body: { id: tenant.id, name: 'again' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'TENANT_EXISTS');
    const byTenant = await h.request('POST', '/routes/tenants', { key: tenant.key, body: { id: 'sneaky', name: 'x' } });
    assert.equal(byTenant.status, 403);
  });

  it('health and metrics', async () => {
    const health = await h.request('GET', '/health');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', postgres: 'ok', temporal: 'ok' });
    const root = await h.request('GET', '/');
    assert.equal(root.status, 200);
    assert.equal(root.body.status, 'ok');
    assert.equal(typeof root.body.relay.pending, 'number');
    const spec = await h.request('GET', '/openapi.json');
    assert.equal(spec.status, 200);
    assert.ok(spec.body.paths['/webhook/inbound'].post);
  });
});
