import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createHarness, TEST_ADMIN_KEY, testKeyring, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeProvider } from './helpers/fake-providers.js';
import { metaPayload, metaText, postMeta } from './helpers/webhooks.js';
import { AppError } from '../core/platform/errors.js';
import { createTemporalClient } from '../core/temporal/client.js';
import { patchSettings, readSettings } from '../core/tenants/settings.js';

const META_SECRET = 'meta-app-secret-admin-0123';

describe('tenant scope: one loader for every /routes/tenants/:tenant_id route', () => {
  let h: Harness;
  let t: { id: string; key: string };
  let other: { id: string; key: string };

  before(async () => {
    h = await createHarness({ worker: false });
    t = await h.createTenant();
    other = await h.createTenant();
  });
  after(() => h.close());

  it('an unknown tenant answers 404 TENANT_NOT_FOUND on every kind of tenant route, even for the admin key', async () => {
    for (const path of ['', '/channels', '/pulse/campaigns', '/pulse/settings', '/intents', '/data-sources', '/conversations', '/keys']) {
      const res = await h.request('GET', `/routes/tenants/no-such-tenant${path}`, { key: TEST_ADMIN_KEY });
      assert.equal(res.status, 404, `GET ${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'TENANT_NOT_FOUND');
      assert.match(res.body.error.message, /^tenant_id: no tenant "no-such-tenant"/);
    }
    // The body is validated before the tenant is looked up: bad input is named whatever the tenant.
    const bad = await h.request('PATCH', '/routes/tenants/no-such-tenant/settings', { key: TEST_ADMIN_KEY, body: { debounce_ms: -1 } });
    assert.equal(bad.status, 400);
  });

  it("another tenant's key gets 404 TENANT_NOT_FOUND before its body is even read; scopes still apply", async () => {
    const foreign = await h.request('PATCH', `/routes/tenants/${t.id}/settings`, {
      key: other.key,
      body: { debounce_ms: 'not even valid' },
    });
    assert.equal(foreign.status, 404);
    assert.equal(foreign.body.error.code, 'TENANT_NOT_FOUND');
    const channels = await h.request('GET', `/routes/tenants/${t.id}/channels`, { key: other.key });
    assert.equal(channels.status, 404);
    assert.equal(channels.body.error.code, 'TENANT_NOT_FOUND');
    // The body-carried tenant of the seed's payloads: the same answer.
    const synthesis = await h.request('POST', '/routes/tools/synthesis', { key: other.key, body: { tenant_id: t.id, question: 'hi' } });
    assert.equal(synthesis.status, 404);
    assert.equal(synthesis.body.error.code, 'TENANT_NOT_FOUND');

    const reader = await h.request('POST', `/routes/tenants/${t.id}/keys`, { key: t.key, body: { name: 'reader', scopes: ['read'] } });
    assert.equal(reader.status, 201);
    assert.equal((await h.request('GET', `/routes/tenants/${t.id}`, { key: reader.body.key })).status, 200);
    const denied = await h.request('POST', `/routes/tenants/${t.id}/channels/sandbox/default`, { key: reader.body.key });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'FORBIDDEN');
  });
});

describe('tenant settings: one typed schema, the only reader and writer of tenants.settings', () => {
  let h: Harness;
  let t: { id: string; key: string };

  before(async () => {
    h = await createHarness({ worker: false });
    t = await h.createTenant();
  });
  after(() => h.close());

  const storedSettings = async () =>
    (await h.runtime.pool.query<{ settings: Record<string, unknown> }>('SELECT settings FROM tenants WHERE id = $1', [t.id])).rows[0]
      .settings;

  it('refuses a bad value naming the field, and an unknown key, changing nothing', async () => {
    const before = await storedSettings();
    const cases: [unknown, RegExp][] = [
      [{ debounce_ms: -1 }, /^body\.debounce_ms: /],
      [{ debounce_ms: 1.5 }, /^body\.debounce_ms: /],
      [{ legacy_reply_timeout_s: 0 }, /^body\.legacy_reply_timeout_s: /],
      [{ opt_out_keywords: ['ok', ''] }, /^body\.opt_out_keywords\.1: /],
      [{ opt_in_confirmation: 42 }, /^body\.opt_in_confirmation: /],
      [{ debounce_ms: 100, retry_forever: true }, /retry_forever/],
    ];
    for (const [body, message] of cases) {
      const res = await h.request('PATCH', `/routes/tenants/${t.id}/settings`, { key: t.key, body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.match(res.body.error.message, message);
    }
    assert.deepEqual(await storedSettings(), before);
  });

  it('a valid patch round-trips through every reader; keys not sent keep their value', async () => {
    const res = await h.request('PATCH', `/routes/tenants/${t.id}/settings`, {
      key: t.key,
      body: {
        fallback_message: 'A person will answer soon.',
        debounce_ms: 250,
        legacy_reply_timeout_s: 30,
        opt_out_keywords: [' halt '],
        opt_in_confirmation: 'Welcome back!',
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const expected = { debounce_ms: 250, legacy_reply_timeout_s: 30, opt_out_keywords: ['HALT'], opt_in_confirmation: 'Welcome back!' };
    assert.deepEqual(res.body.settings, expected);
    assert.equal(res.body.fallback_message, 'A person will answer soon.');

    const got = await h.request('GET', `/routes/tenants/${t.id}`, { key: t.key });
    assert.deepEqual(got.body.settings, expected);
    assert.equal(got.body.debounce_ms, 250);
    const pulse = await h.request('GET', `/routes/tenants/${t.id}/pulse/settings`, { key: t.key });
    assert.deepEqual(pulse.body.opt_out_keywords, ['STOP', 'UNSUBSCRIBE', 'HALT']);
    assert.equal(pulse.body.opt_in_confirmation, 'Welcome back!');
    const mode = await h.request('PATCH', `/routes/tenants/${t.id}`, { key: t.key, body: { mode: 'native' } });
    assert.equal(mode.body.legacy_reply_timeout_s, 30);

    const partial = await h.request('PATCH', `/routes/tenants/${t.id}/settings`, { key: t.key, body: { debounce_ms: 0 } });
    assert.equal(partial.status, 200);
    assert.deepEqual(partial.body.settings, { ...expected, debounce_ms: 0 });
    assert.deepEqual(await storedSettings(), { ...expected, debounce_ms: 0 });
  });

  it('reads past a stored value the schema no longer accepts, and patchSettings validates on its own', async () => {
    await h.runtime.pool.query(
      `UPDATE tenants SET settings = settings || '{"debounce_ms": "soon", "old_flag": true}'::jsonb WHERE id = $1`,
      [t.id],
    );
    const got = await h.request('GET', `/routes/tenants/${t.id}`, { key: t.key });
    assert.equal(got.status, 200);
    assert.equal(got.body.debounce_ms, null);
    assert.equal(got.body.settings.debounce_ms, undefined);
    assert.equal(got.body.settings.legacy_reply_timeout_s, 30, 'the valid keys are kept');
    assert.deepEqual(readSettings({ settings: { debounce_ms: 'soon', legacy_reply_timeout_s: 5, old_flag: 1 } }), {
      legacy_reply_timeout_s: 5,
    });

    await assert.rejects(
      patchSettings(h.runtime.db, t.id, { debounce_ms: -5 }),
      (err: unknown) => err instanceof AppError && err.status === 400 && /^settings\.debounce_ms: /.test(err.message),
    );
    await assert.rejects(
      patchSettings(h.runtime.db, t.id, { nope: 1 } as never),
      (err: unknown) => err instanceof AppError && err.status === 400 && /nope/.test(err.message),
    );
    await assert.rejects(
      patchSettings(h.runtime.db, 'no-such-tenant', { debounce_ms: 5 }),
      (err: unknown) => err instanceof AppError && err.code === 'TENANT_NOT_FOUND',
    );
  });
});

describe('channels: disable, delete, and the sandbox as the default again', () => {
  let h: Harness;
  let t: { id: string; key: string };
  const meta = new FakeProvider('meta', { token: 'meta-access-token' });
  const pnid = `20${randomBytes(4).readUInt32BE()}`;
  let metaId = '';
  let sandboxId = '';

  const metaBody = () => ({
    provider: 'meta',
    credentials: { phone_number_id: pnid, access_token: 'meta-access-token', app_secret: META_SECRET, verify_token: 'verify-admin-0123' },
    api_base_url: meta.url,
  });
  const channels = async () => (await h.request('GET', `/routes/tenants/${t.id}/channels`, { key: t.key })).body.channels as any[];
  const patch = (id: string, body: unknown) => h.request('PATCH', `/routes/tenants/${t.id}/channels/${id}`, { key: t.key, body });
  const remove = (id: string, query = '') => h.request('DELETE', `/routes/tenants/${t.id}/channels/${id}${query}`, { key: t.key });
  const messageCount = async () => Number((await h.runtime.pool.query('SELECT count(*) FROM messages')).rows[0].count);
  const outboundOf = async (from: string, channelId: string) =>
    (
      await h.runtime.pool.query(
        `SELECT m.status, m.delivery_error_code FROM messages m
           JOIN conversations c ON c.id = m.conversation_id JOIN contacts k ON k.id = c.contact_id
          WHERE k.phone_hash = $1 AND c.channel_id = $2 AND m.direction = 'outbound'`,
        [h.runtime.keyring.blindIndex(from), channelId],
      )
    ).rows as { status: string; delivery_error_code: string | null }[];

  before(async () => {
    await meta.start();
    h = await createHarness();
    t = await h.createTenant();
    sandboxId = (await channels())[0].id;
    const created = await h.request('POST', `/routes/tenants/${t.id}/channels`, { key: t.key, body: metaBody() });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    metaId = created.body.id;
  });
  after(async () => {
    await h.close();
    await meta.close();
  });

  it('the default cannot be disabled; the sandbox becomes the default again in one call', async () => {
    assert.equal((await channels()).find((c) => c.id === metaId).is_default, true, 'the pasted Meta channel took the default');
    const refused = await patch(metaId, { enabled: false });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'CHANNEL_IS_DEFAULT');

    const back = await h.request('POST', `/routes/tenants/${t.id}/channels/sandbox/default`, { key: t.key });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.id, sandboxId);
    assert.equal(back.body.is_default, true);
    assert.equal(back.body.enabled, true);
    const list = await channels();
    assert.deepEqual(
      list.filter((c) => c.is_default).map((c) => c.id),
      [sandboxId],
    );

    // Replies to the legacy inbound route go out through the sandbox again, readable over the API.
    const phone = uniquePhone();
    const res = await h.inbound(t.key, { from: phone, message: 'hello again', tenant_id: t.id, timestamp: new Date().toISOString() });
    assert.equal(res.status, 202);
    await waitFor(async () => (await h.sandbox(t.id, t.key, phone)).length > 0, { timeoutMs: 30_000, what: 'the sandbox reply' });
  });

  it('PATCH changes a channel and refuses what it cannot do, naming the field', async () => {
    const changed = await patch(metaId, { team: 'support', rate_per_second: 20, template: { name: 'reopen_chat', language: 'en' } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.team, 'support');
    assert.equal(changed.body.rate_per_second, 20);
    assert.deepEqual(changed.body.template, { name: 'reopen_chat', language: 'en' });
    assert.equal(changed.body.credentials.app_secret, '[redacted]');
    const cleared = await patch(metaId, { team: null, template: null });
    assert.equal(cleared.body.team, null);
    assert.equal(cleared.body.template, null);
    assert.equal(cleared.body.rate_per_second, 20, 'fields not sent keep their value');

    for (const [body, message] of [
      [{ enabled: 'no' }, /^body\.enabled: /],
      [{ default: false }, /^body\.default: /],
      [{ rate_per_second: 0 }, /^body\.rate_per_second: /],
      [{ provider: 'twilio' }, /provider/],
    ] as const) {
      const res = await patch(metaId, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.error.message, message);
    }
    const missing = await patch('00000000-0000-4000-8000-000000000000', { enabled: true });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'CHANNEL_NOT_FOUND');
    assert.equal((await patch('not-a-uuid', { enabled: true })).status, 400);
  });

  it('a disabled channel answers its webhooks 404 CHANNEL_DISABLED (after the signature), stores nothing, and cannot be the default', async () => {
    const disabled = await patch(metaId, { enabled: false });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.enabled, false);
    const before = await messageCount();
    const payload = metaPayload(pnid, { messages: [metaText(uniquePhone(), 'anyone there?')] });
    const res = await postMeta(h.baseUrl, payload, META_SECRET);
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'CHANNEL_DISABLED');
    assert.equal((await postMeta(h.baseUrl, payload, 'not-the-app-secret')).status, 401, 'an unsigned caller learns nothing');
    assert.equal(await messageCount(), before);

    const notDefault = await patch(metaId, { default: true });
    assert.equal(notDefault.status, 409);
    assert.equal(notDefault.body.error.code, 'CHANNEL_DISABLED');
    const both = await patch(metaId, { default: true, enabled: true });
    assert.equal(both.status, 200);
    assert.equal(both.body.is_default, true);
    const sandboxAgain = await patch(sandboxId, { default: true });
    assert.equal(sandboxAgain.status, 200);
    assert.equal(sandboxAgain.body.is_default, true);
    assert.equal((await channels()).filter((c) => c.is_default).length, 1);
  });

  it('a channel disabled while a reply is pending sends nothing: the reply is a failed delivery, the conversation goes on', async () => {
    const settings = await h.request('PATCH', `/routes/tenants/${t.id}/settings`, { key: t.key, body: { debounce_ms: 3000 } });
    assert.equal(settings.status, 200);
    const from = uniquePhone();
    const sendsBefore = meta.sends().length;
    const res = await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(from, 'where is my order?')] }), META_SECRET);
    assert.equal(res.status, 200);
    assert.equal((await patch(metaId, { enabled: false })).status, 200);
    const [reply] = await waitFor(
      async () => {
        const rows = await outboundOf(from, metaId);
        return rows[0]?.status === 'failed' && rows;
      },
      { timeoutMs: 30_000, what: 'the refused reply' },
    );
    assert.equal(reply.delivery_error_code, 'channel_disabled');
    assert.equal(meta.sends().length, sendsBefore, 'nothing reached the provider');
    const { rows } = await h.runtime.pool.query<{ workflow_id: string }>(
      `SELECT c.workflow_id FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE k.phone_hash = $1`,
      [h.runtime.keyring.blindIndex(from)],
    );
    const client = await createTemporalClient({ address: h.config.TEMPORAL_ADDRESS!, namespace: 'default', keyring: testKeyring() });
    try {
      assert.equal((await client.workflow.getHandle(rows[0].workflow_id).describe()).status.name, 'RUNNING');
    } finally {
      await client.connection.close();
    }
    await h.request('PATCH', `/routes/tenants/${t.id}/settings`, { key: t.key, body: { debounce_ms: 0 } });
  });

  it('DELETE refuses the default and a channel in use (unless forced), keeps its conversations, and frees the number', async () => {
    const isDefault = await remove(sandboxId);
    assert.equal(isDefault.status, 409);
    assert.equal(isDefault.body.error.code, 'CHANNEL_IS_DEFAULT');
    const inUse = await remove(metaId);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.error.code, 'CHANNEL_IN_USE');
    assert.match(inUse.body.error.message, /force=true/);
    const { rows: conversations } = await h.runtime.pool.query<{ id: string }>('SELECT id FROM conversations WHERE channel_id = $1', [
      metaId,
    ]);
    assert.ok(conversations.length > 0);

    const forced = await remove(metaId, '?force=true');
    assert.equal(forced.status, 204);
    assert.ok(!(await channels()).some((c) => c.id === metaId), 'a deleted channel is not listed');
    const conversation = await h.request('GET', `/routes/tenants/${t.id}/conversations/${conversations[0].id}`, { key: t.key });
    assert.equal(conversation.status, 200, 'its conversations stay readable');
    const { rows } = await h.runtime.pool.query('SELECT credentials_enc, routing_key, enabled, deleted_at FROM channels WHERE id = $1', [
      metaId,
    ]);
    assert.equal(rows[0].credentials_enc, null, 'credentials erased');
    assert.equal(rows[0].routing_key, null);
    assert.equal(rows[0].enabled, false);
    assert.ok(rows[0].deleted_at);
    const webhook = await postMeta(h.baseUrl, metaPayload(pnid, { messages: [metaText(uniquePhone(), 'hello?')] }), META_SECRET);
    assert.equal(webhook.status, 401, 'the number is unknown again');
    assert.equal((await remove(metaId)).status, 404);
    assert.equal((await patch(metaId, { enabled: true })).status, 404);

    const again = await h.request('POST', `/routes/tenants/${t.id}/channels`, { key: t.key, body: metaBody() });
    assert.equal(again.status, 201, 'the number can be registered again');
    assert.notEqual(again.body.id, metaId);
    metaId = again.body.id;
  });

  it('a channel without open conversations is deleted at once; a deleted sandbox is recreated as the default', async () => {
    // Registering a real number while the sandbox is the default made it the default.
    assert.equal((await channels()).find((c) => c.id === metaId).is_default, true);
    const gone = await remove(sandboxId, '?force=false');
    assert.equal(gone.status, 409, 'the sandbox has an open conversation');
    assert.equal((await remove(sandboxId, '?force=true')).status, 204);
    assert.ok(!(await channels()).some((c) => c.provider === 'sandbox'));

    const back = await h.request('POST', `/routes/tenants/${t.id}/channels/sandbox/default`, { key: t.key });
    assert.equal(back.status, 200);
    assert.notEqual(back.body.id, sandboxId);
    assert.equal(back.body.provider, 'sandbox');
    assert.equal(back.body.is_default, true);
    assert.equal((await remove(metaId)).status, 204, 'no conversation uses the re-registered number');
    assert.equal((await remove(metaId, '?force=maybe')).status, 400);
  });

  it('the new endpoints are in the OpenAPI document', async () => {
    const doc = await h.request('GET', '/openapi.json');
    const channel = doc.body.paths['/routes/tenants/{tenant_id}/channels/{channel_id}'];
    assert.ok(channel?.patch?.summary && channel?.delete?.summary);
    assert.ok(doc.body.paths['/routes/tenants/{tenant_id}/channels/sandbox/default']?.post?.summary);
    assert.ok(
      doc.body.paths['/routes/tenants/{tenant_id}/settings'].patch.requestBody.content['application/json'].schema.properties
        .opt_out_keywords,
    );
  });
});
