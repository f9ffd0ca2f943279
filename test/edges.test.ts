import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../api/json.js';
import { createHarness, uniquePhone, type Harness } from './helpers/harness.js';

describe('edges: JSON nesting depth is capped', () => {
  let h: Harness;
  let t: { id: string; key: string };
  before(async () => {
    h = await createHarness({ worker: false, env: { RATE_LIMIT_PER_MINUTE: '0' } });
    t = await h.createTenant();
  });
  after(() => h?.close());

  const deepArray = '['.repeat(10_000) + ']'.repeat(10_000);
  const nested = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);

  it('10,000 levels answer 400 JSON_TOO_DEEP on the inbound webhook, a /routes route and a provider webhook', async () => {
    const cases: { method?: 'POST' | 'PUT'; url: string; key?: string; headers?: Record<string, string>; body: string }[] = [
      { url: '/webhook/inbound', key: t.key, body: deepArray },
      {
        url: '/webhook/inbound',
        key: t.key,
        body: JSON.stringify({ from: uniquePhone(), tenant_id: t.id, timestamp: new Date().toISOString(), message: 'x' }).replace(
          '"x"',
          deepArray,
        ),
      },
      { method: 'PUT', url: `/routes/tenants/${t.id}/contacts`, key: t.key, body: deepArray },
      {
        method: 'PUT',
        url: `/routes/tenants/${t.id}/contacts`,
        key: t.key,
        body: `{"contacts":[{"phone":"${uniquePhone()}","opted_in":true,"attributes":{"deep":${nested(10_000)}}}]}`,
      },
      { url: '/webhooks/meta', headers: { 'x-hub-signature-256': 'sha256=00' }, body: deepArray },
    ];
    for (const c of cases) {
      const res = await h.request(c.method ?? 'POST', c.url, { key: c.key, headers: c.headers, body: c.body });
      assert.equal(res.status, 400, `${c.url}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'JSON_TOO_DEEP', c.url);
      assert.match(res.body.error.message, /deeper than 64 levels/);
    }
    const { rows } = await h.runtime.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM contacts');
    assert.equal(rows[0].n, 0, 'nothing was stored');
  });

  it('nesting up to the cap is parsed as usual; brackets inside strings do not count', async () => {
    assert.equal(MAX_JSON_DEPTH, 64);
    assert.equal(exceedsJsonDepth(nested(64)), false);
    assert.equal(exceedsJsonDepth(nested(65)), true);
    assert.equal(exceedsJsonDepth(JSON.stringify({ text: '['.repeat(1000) + '\\"[[' })), false);
    const attributes = JSON.parse(nested(60));
    const res = await h.request('PUT', `/routes/tenants/${t.id}/contacts`, {
      key: t.key,
      body: { contacts: [{ phone: uniquePhone(), opted_in: true, attributes: { deep: attributes } }] },
    });
    assert.ok(res.status < 300, `${res.status} ${JSON.stringify(res.body)}`);
  });
});
