import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../api/json.js';
import { addressBucket } from '../api/security.js';
import { loadConfig } from '../core/platform/config.js';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, type Harness } from './helpers/harness.js';

/** One request as if from `ip` (the socket's address), optionally through a proxy that names `forwardedFor`. */
async function from(
  h: Harness,
  ip: string,
  opts: {
    method?: 'GET' | 'POST' | 'PUT';
    url: string;
    key?: string;
    forwardedFor?: string;
    headers?: Record<string, string>;
    body?: string;
  },
) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.forwardedFor) headers['x-forwarded-for'] = opts.forwardedFor;
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await h.api.app.inject({ method: opts.method ?? 'GET', url: opts.url, headers, payload: opts.body, remoteAddress: ip });
  return { status: res.statusCode, body: res.json() as { error?: { code: string; message: string } }, headers: res.headers };
}

const BAD_KEY = 'prl_guess_0000000000000000';

describe('edges: failed authentications are throttled per client address', () => {
  let h: Harness;
  let t: { id: string; key: string };
  before(async () => {
    h = await createHarness({ worker: false, env: { AUTH_FAILURES_PER_MINUTE: '5', RATE_LIMIT_PER_MINUTE: '0' } });
    t = await h.createTenant();
  });
  after(() => h?.close());

  it('a 401 flood from one address ends in 429 with Retry-After; other addresses and valid keys are unaffected', async () => {
    const url = `/routes/tenants/${t.id}`;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await from(h, '203.0.113.10', { url, key: `${BAD_KEY}${i}` })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);

    const limited = await from(h, '203.0.113.10', { url, key: t.key });
    assert.equal(limited.status, 429, 'the throttled address gets no answer about any key, a right one included');
    assert.equal(limited.body.error?.code, 'RATE_LIMITED');
    assert.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60, 'Retry-After in seconds');

    assert.equal((await from(h, '203.0.113.11', { url, key: BAD_KEY })).status, 401, 'another address still gets 401');
    assert.equal((await from(h, '203.0.113.11', { url, key: t.key })).status, 200, 'and 200 with a valid key');
    for (let i = 0; i < 10; i++) assert.equal((await from(h, '203.0.113.12', { url, key: t.key })).status, 200, 'successes never count');
    assert.match(h.logs.text(), /"ip":"203\.0\.113\.10".*address throttled/);
  });

  it('an IPv6 client counts by its /64, so rotating addresses inside it does not escape', async () => {
    const url = `/routes/tenants/${t.id}`;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await from(h, `2001:db8:aa:1::${i + 1}`, { url, key: BAD_KEY })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    assert.equal((await from(h, '2001:db8:aa:2::1', { url, key: BAD_KEY })).status, 401, 'the next /64 is another client');
    assert.equal(addressBucket('2001:0db8:00aa:0001:ffff::7'), '2001:db8:aa:1::/64');
    assert.equal(addressBucket('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressBucket('::1'), '0:0:0:0::/64');
    assert.equal(addressBucket('192.0.2.1'), '192.0.2.1');
  });

  it('webhook signatures and secrets that do not verify count too', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await from(h, '203.0.113.20', {
        method: 'POST',
        url: '/webhooks/infobip/00000000-0000-4000-8000-000000000000',
        headers: { 'x-webhook-secret': `guess-${i}` },
        body: '{"results":[]}',
      });
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  });

  it('without TRUST_PROXY a spoofed X-Forwarded-For does not escape the limit', async () => {
    const url = `/routes/tenants/${t.id}`;
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push((await from(h, '203.0.113.30', { url, key: BAD_KEY, forwardedFor: `198.51.100.${i + 1}` })).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
  });
});

describe('edges: TRUST_PROXY names the real client address', () => {
  let h: Harness;
  let t: { id: string; key: string };
  before(async () => {
    h = await createHarness({
      worker: false,
      env: { AUTH_FAILURES_PER_MINUTE: '3', RATE_LIMIT_PER_MINUTE: '4', TRUST_PROXY: '127.0.0.1,10.0.0.0/8' },
    });
    t = await h.createTenant();
  });
  after(() => h?.close());

  it('behind a trusted proxy each forwarded client has its own buckets, and the log names it', async () => {
    const url = `/routes/tenants/${t.id}`;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await from(h, '10.1.2.3', { url, key: BAD_KEY, forwardedFor: '203.0.113.40' })).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    assert.equal((await from(h, '10.1.2.3', { url, key: BAD_KEY, forwardedFor: '203.0.113.41' })).status, 401, 'another client');
    assert.match(h.logs.text(), /"ip":"203\.0\.113\.40".*address throttled/);
  });

  it('unauthenticated requests (webhooks) from different clients no longer share one rate bucket', async () => {
    const hit = (forwardedFor: string) => from(h, '127.0.0.1', { url: '/', forwardedFor });
    const first: number[] = [];
    for (let i = 0; i < 5; i++) first.push((await hit('198.51.100.50')).status);
    assert.deepEqual(first, [200, 200, 200, 200, 429]);
    assert.equal((await hit('198.51.100.51')).status, 200, 'a second client behind the same proxy has its own budget');
  });

  it('an untrusted peer cannot name a client: its X-Forwarded-For is ignored', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await from(h, '192.0.2.60', { url: '/', forwardedFor: `198.51.100.${70 + i}` })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
  });

  it('with a hop count the nearest proxy names the client; what the client wrote further left is ignored', async () => {
    const hops = await createHarness({
      worker: false,
      env: { AUTH_FAILURES_PER_MINUTE: '2', RATE_LIMIT_PER_MINUTE: '0', TRUST_PROXY: '1' },
    });
    try {
      const url = '/routes/tenants/nobody';
      const statuses: number[] = [];
      // The client sends its own X-Forwarded-For; the proxy appends the address it saw.
      for (let i = 0; i < 3; i++)
        statuses.push((await from(hops, '10.9.9.9', { url, key: BAD_KEY, forwardedFor: `192.0.2.${i}, 203.0.113.90` })).status);
      assert.deepEqual(statuses, [401, 401, 429]);
      assert.equal((await from(hops, '10.9.9.9', { url, key: BAD_KEY, forwardedFor: '203.0.113.91' })).status, 401);
    } finally {
      await hops.close();
    }
  });

  it('TRUST_PROXY accepts true, false, a hop count and addresses, and refuses anything else', () => {
    const parse = (v: string) => loadConfig({ ADMIN_API_KEY: TEST_ADMIN_KEY, TRUST_PROXY: v }).TRUST_PROXY;
    assert.equal(loadConfig({ ADMIN_API_KEY: TEST_ADMIN_KEY }).TRUST_PROXY, false);
    assert.equal(parse('true'), true);
    assert.equal(parse('off'), false);
    assert.equal(parse('2'), 2);
    assert.deepEqual(parse('10.0.0.0/8, ::1'), ['10.0.0.0/8', '::1']);
    for (const bad of ['yes', '10.0.0.0/33', 'proxy.local', '10.0.0.1/8/1']) assert.throws(() => parse(bad), /TRUST_PROXY/);
  });
});

describe('edges: JSON nesting depth is capped', () => {
  const INFOBIP_SECRET = 'infobip-webhook-secret-0123';
  let h: Harness;
  let t: { id: string; key: string };
  let infobipChannel: string;
  before(async () => {
    h = await createHarness({ worker: false, env: { RATE_LIMIT_PER_MINUTE: '0' } });
    t = await h.createTenant();
    const channel = await h.request('POST', `/routes/tenants/${t.id}/channels`, {
      key: t.key,
      body: { provider: 'infobip', credentials: { api_key: 'infobip-api-key', webhook_secret: INFOBIP_SECRET, sender: '15550001111' } },
    });
    assert.equal(channel.status, 201, JSON.stringify(channel.body));
    infobipChannel = channel.body.id;
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
      { url: `/webhooks/infobip/${infobipChannel}`, headers: { 'x-webhook-secret': INFOBIP_SECRET }, body: `{"results":${deepArray}}` },
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
