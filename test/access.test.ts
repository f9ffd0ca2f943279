import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { registerAuth, type RouteEntry } from '../api/auth.js';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const SCOPE_VALUES = new Set(['public', 'operator', 'ops', 'admin', 'messages', 'queue', 'read', 'data_worker', 'events']);

describe('access: declared scopes, keys, tenant isolation', () => {
  let h: Harness;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  const bPhone = uniquePhone();
  const bText = `B-secret order ${Math.random().toString(36).slice(2)}`;
  let bConversation: string;
  let bContact: string;
  let bKeyId: string;

  before(async () => {
    h = await createHarness({ env: { OPS_API_KEY: 'ops_test_key_0123456789abcdef' } });
    a = await h.createTenant();
    b = await h.createTenant();
    const res = await h.inbound(b.key, { from: bPhone, message: bText, tenant_id: b.id, timestamp: new Date().toISOString() });
    assert.equal(res.status, 202);
    bConversation = res.body.conversation_id;
    await waitFor(async () => (await h.sandbox(b.id, b.key, bPhone)).length > 0, { timeoutMs: 30_000, what: "B's reply" });
    const conv = await h.request('GET', `/routes/tenants/${b.id}/conversations/${bConversation}`, { key: b.key });
    bContact = conv.body.contact_id;
    const keys = await h.request('GET', `/routes/tenants/${b.id}/keys`, { key: b.key });
    bKeyId = keys.body.keys[0].id;
  });
  after(() => h.close());

  const routes = (): RouteEntry[] => h.api.app.routeCatalog;

  it('every registered route declares its auth', () => {
    const all = routes();
    assert.ok(all.length >= 15, `found ${all.length} routes`);
    const undeclared = all.filter((r) => !r.url.startsWith('/docs') && !SCOPE_VALUES.has(String(r.auth)));
    assert.deepEqual(undeclared, []);
    for (const url of ['/routes/tenants/:tenant_id/keys', '/routes/tenants/:tenant_id/contacts/:contact_id', '/codec/decode']) {
      assert.ok(
        all.some((r) => r.url === url),
        `${url} is registered`,
      );
    }
  });

  it('the OpenAPI document shows the keys, privacy and codec routes', async () => {
    const doc = await h.request('GET', '/openapi.json');
    assert.equal(doc.status, 200);
    for (const p of [
      '/routes/tenants/{tenant_id}/keys',
      '/routes/tenants/{tenant_id}/keys/{id}',
      '/routes/tenants/{tenant_id}/contacts/{contact_id}',
      '/routes/tenants/{tenant_id}/contacts/{contact_id}/export',
      '/routes/tenants/{tenant_id}/retention',
      '/codec/decode',
    ]) {
      assert.ok(doc.body.paths[p], `${p} is documented`);
    }
  });

  it('refuses at start-up a route without declared auth', async () => {
    const app = Fastify();
    registerAuth(app, { db: h.runtime.db, adminApiKey: TEST_ADMIN_KEY });
    assert.throws(() => app.get('/unprotected', async () => 'x'), /declares no config\.auth/);
    await app.close();
  });

  it('keys: create (shown once), list by prefix, revoke fails at once', async () => {
    const created = await h.request('POST', `/routes/tenants/${a.id}/keys`, { key: a.key, body: { name: 'reader', scopes: ['read'] } });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body).sort(), ['id', 'key', 'prefix', 'scopes']);
    assert.ok(created.body.key.startsWith(created.body.prefix));
    assert.deepEqual(created.body.scopes, ['read']);

    const list = await h.request('GET', `/routes/tenants/${a.id}/keys`, { key: a.key });
    assert.equal(list.status, 200);
    const entry = list.body.keys.find((k: any) => k.id === created.body.id);
    assert.deepEqual(Object.keys(entry).sort(), ['created_at', 'id', 'last_used_at', 'name', 'prefix', 'scopes']);
    assert.ok(!JSON.stringify(list.body).includes(created.body.key), 'the key itself is never listed');

    const readKey = created.body.key;
    assert.equal((await h.request('GET', `/routes/tenants/${a.id}`, { key: readKey })).status, 200);
    const denied = await h.request('POST', `/routes/tenants/${a.id}/keys`, { key: readKey, body: { name: 'x', scopes: ['admin'] } });
    assert.equal(denied.status, 403, 'a read key cannot mint keys');
    const inbound = await h.inbound(readKey, { from: uniquePhone(), message: 'hi', tenant_id: a.id, timestamp: new Date().toISOString() });
    assert.equal(inbound.status, 403, 'a read key cannot post messages');

    const revoked = await h.request('DELETE', `/routes/tenants/${a.id}/keys/${created.body.id}`, { key: a.key });
    assert.equal(revoked.status, 204);
    const after = await h.request('GET', `/routes/tenants/${a.id}`, { key: readKey });
    assert.equal(after.status, 401);
    assert.equal((await h.request('DELETE', `/routes/tenants/${a.id}/keys/${created.body.id}`, { key: a.key })).status, 404);

    const bad = await h.request('POST', `/routes/tenants/${a.id}/keys`, { key: a.key, body: { name: 'x', scopes: ['root'] } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /body\.scopes/);
  });

  /** Routes under a tenant, whatever their parameter is called (the auth hook only knows `tenant_id`). */
  const TENANT_ROUTE = /^\/routes\/tenants\/:([a-z_]+)/;
  const tenantRoutes = () => routes().filter((r) => TENANT_ROUTE.test(r.url) && r.method !== 'HEAD' && r.method !== 'OPTIONS');

  /** Fills a route's path: the tenant parameter with `tenant`, the others with B's ids. */
  function pathFor(url: string, tenant: string): string {
    const tenantParam = TENANT_ROUTE.exec(url)![1];
    const ids: Record<string, string> = { [tenantParam]: tenant, conversation_id: bConversation, contact_id: bContact };
    if (tenantParam !== 'id') ids.id = bKeyId;
    return url.replace(/:([a-z_]+)/g, (_m, name: string) => ids[name] ?? bContact);
  }

  function assertNoLeak(res: { body: unknown }, where: string) {
    const text = JSON.stringify(res.body ?? '');
    for (const secret of [bPhone, bText, bPhone.slice(1)]) assert.ok(!text.includes(secret), `${where} leaks B's data`);
  }

  it("matrix: tenant A's key on every tenant-scoped route of tenant B answers 404", async () => {
    const scoped = tenantRoutes();
    assert.ok(scoped.length >= 10, `found ${scoped.length} tenant-scoped routes`);
    for (const r of scoped) {
      const url =
        pathFor(r.url, b.id) +
        (r.url.endsWith('/contacts') || r.url.includes('sandbox')
          ? `?phone=${encodeURIComponent(bPhone)}&to=${encodeURIComponent(bPhone)}`
          : '');
      const res = await h.request(r.method, url, { key: a.key, body: r.method === 'GET' || r.method === 'DELETE' ? undefined : {} });
      assert.equal(res.status, 404, `${r.method} ${r.url}: ${res.status} ${JSON.stringify(res.body)}`);
      assertNoLeak(res, `${r.method} ${r.url}`);
    }
    // Tenant in the body (the legacy payloads): same answer.
    const inbound = await h.inbound(a.key, { from: uniquePhone(), message: 'x', tenant_id: b.id, timestamp: new Date().toISOString() });
    assert.equal(inbound.status, 404);
  });

  it("matrix: B's resource ids under A's own tenant answer 404, never B's data", async () => {
    const withIds = tenantRoutes().filter((r) => (r.url.match(/:[a-z_]+/g) ?? []).length > 1);
    assert.ok(withIds.length >= 4, `found ${withIds.length} routes with resource ids`);
    for (const r of withIds) {
      const res = await h.request(r.method, pathFor(r.url, a.id), {
        key: a.key,
        body: r.method === 'GET' || r.method === 'DELETE' ? undefined : {},
      });
      // A body-carrying route may reject the empty body first; it must still not act or answer with B's data.
      assert.ok(
        res.status === 404 || (res.status === 400 && r.method !== 'GET' && r.method !== 'DELETE'),
        `${r.method} ${r.url}: ${res.status}`,
      );
      assertNoLeak(res, `${r.method} ${r.url}`);
    }
    // Listings and look-ups under A's own tenant never reach B's rows.
    assert.deepEqual(await h.sandbox(a.id, a.key, bPhone), []);
    const listed = await h.request('GET', `/routes/tenants/${a.id}/conversations`, { key: a.key });
    assert.equal(listed.status, 200);
    assertNoLeak(listed, "A's conversation list");
    assert.ok(!JSON.stringify(listed.body).includes(bConversation));
    const byPhone = await h.request('DELETE', `/routes/tenants/${a.id}/contacts?phone=${encodeURIComponent(bPhone)}`, { key: a.key });
    assert.equal(byPhone.status, 404);
    // Nothing of B's was touched.
    const exported = await h.request('GET', `/routes/tenants/${b.id}/contacts/${bContact}/export`, { key: b.key });
    assert.equal(exported.status, 200);
    assert.equal(exported.body.contact.phone, bPhone);
    assert.equal(exported.body.conversations[0].messages[0].text, bText);
    const keys = await h.request('GET', `/routes/tenants/${b.id}/keys`, { key: b.key });
    assert.ok(
      keys.body.keys.some((k: any) => k.id === bKeyId),
      "B's key is not revoked",
    );
  });

  it('ops key opens the codec endpoint only; tenant keys never', async () => {
    const ops = 'ops_test_key_0123456789abcdef';
    const body = {
      payloads: [{ metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"hi"').toString('base64') }],
    };
    const enc = await h.request('POST', '/codec/encode', { key: ops, body });
    assert.equal(enc.status, 200);
    assert.equal(Buffer.from(enc.body.payloads[0].metadata.encoding, 'base64').toString(), 'binary/encrypted');
    const dec = await h.request('POST', '/codec/decode', { key: TEST_ADMIN_KEY, body: enc.body });
    assert.deepEqual(dec.body, body);
    assert.equal((await h.request('POST', '/codec/decode', { key: a.key, body: enc.body })).status, 403);
    assert.equal((await h.request('POST', '/codec/decode', { body: enc.body })).status, 401);
    assert.equal((await h.request('GET', `/routes/tenants/${a.id}`, { key: ops })).status, 403, 'ops key is not an admin key');
  });

  it('codec CORS: the Temporal UI origin gets CORS headers, others do not', async () => {
    const pre = await h.request('OPTIONS', '/codec/decode', {
      headers: {
        origin: 'http://localhost:8233',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-namespace',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://localhost:8233');
    assert.match(pre.headers['access-control-allow-headers'], /authorization/);
    const denied = await h.request('POST', '/codec/decode', { headers: { origin: 'http://localhost:8233' }, body: { payloads: [] } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], 'http://localhost:8233', 'errors carry CORS headers too');
    const other = await h.request('OPTIONS', '/codec/decode', { headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });

  it('security headers and body size limit', async () => {
    const res = await h.request('GET', '/');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(res.headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.doesNotMatch(res.headers['content-security-policy'], /upgrade-insecure-requests/, '/docs must work over plain http');
    assert.ok(res.headers['strict-transport-security']);
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
    const huge = await h.request('POST', '/webhook/inbound', { key: a.key, body: JSON.stringify({ message: 'x'.repeat(1_100_000) }) });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'BODY_TOO_LARGE');
  });
});

describe('access: per-key rate limit', () => {
  let h: Harness;
  after(() => h?.close());

  it('answers 429 with Retry-After once a key spends its budget, and counts keys separately', async () => {
    h = await createHarness({ worker: false, env: { RATE_LIMIT_PER_MINUTE: '5' } });
    const t = await h.createTenant();
    const second = await h.request('POST', `/routes/tenants/${t.id}/keys`, { key: t.key, body: { name: 'second', scopes: ['read'] } });
    assert.equal(second.status, 201);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<Harness['request']>> | undefined;
    for (let i = 0; i < 6; i++) {
      const res = await h.request('GET', `/routes/tenants/${t.id}`, { key: t.key });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    // createTenant used the admin key; the tenant key made 1 POST + these 6 GETs.
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
    assert.ok(limited);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After in seconds');
    assert.equal(limited.body.error.code, 'RATE_LIMITED');
    const other = await h.request('GET', `/routes/tenants/${t.id}`, { key: second.body.key });
    assert.equal(other.status, 200, 'another key has its own budget');
  });
});
