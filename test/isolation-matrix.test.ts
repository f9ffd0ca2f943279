import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { recordRemoteLookup } from '../core/data-engine/remote.js';
import { messageMedia } from '../core/db/schema.js';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, type Harness } from './helpers/harness.js';

/**
 * Tenant A's key against tenant B's real resources, on every route the API registers. Each
 * call has a valid body, so it reaches the ownership check (not a 400 for the body or a 404
 * for a made-up id); each must answer 404 (403 where that is the contract) and leave B's rows
 * exactly as they were. A route without an entry here fails the test.
 */

interface Seeded {
  a: string;
  b: string;
  bPhone: string;
  bText: string;
  conversation: string;
  contact: string;
  message: string;
  media: string;
  campaign: string;
  document: string;
  source: string;
  job: string;
  channel: string;
  key: string;
  lookup: string;
  endpoint: string;
  delivery: string;
}

interface Call {
  url: string;
  body?: unknown;
  /** 404 by default; `list` = 200 (or 204) with nothing of B's in the answer. */
  expect?: number | 'list';
}

/** Routes with the tenant in the path: called under B's tenant, and (`own`) under A's with B's ids. */
interface TenantRoute {
  body?: (s: Seeded) => unknown;
  /** A's own tenant path with B's resource ids or references. */
  own?: (s: Seeded) => Call[];
  query?: (s: Seeded) => string;
}

const t = (tenant: string, rest = '') => `/routes/tenants/${tenant}${rest}`;
const campaignBody = { name: 'Weekly', cron: '0 9 * * MON', timezone: 'UTC', message: { template: 'Hi {{first_name}}' } };
const dataSources = (id: string) => ({
  data_sources: [
    {
      id,
      name: 'CRM',
      type: 'postgresql',
      served_by: 'tenant_worker',
      queries: { order_status: 'SELECT status FROM orders WHERE order_id = $1' },
    },
  ],
});
const intents = (source: string) => ({
  intents: [
    {
      id: 'orders',
      patterns: ['order (?<order_id>\\d+)'],
      data_source: source,
      query: 'order_status',
      params: ['order_id'],
      reply_template: '{{status}}',
    },
  ],
});
const metaChannel = (pnid: string) => ({
  provider: 'meta',
  display_phone_number: '+15550783881',
  credentials: { phone_number_id: pnid, access_token: 'meta-access-token', app_secret: 'meta-app-secret', verify_token: 'verify-me' },
});
const aiProfile = {
  base_url: 'https://api.openai.com/v1',
  api_key: 'sk-test',
  chat_model: 'gpt-4o-mini',
  embedding_model: 'text-embedding-3-small',
};

const TENANT_ROUTES: Record<string, TenantRoute> = {
  'GET /routes/tenants/:tenant_id': {},
  'PATCH /routes/tenants/:tenant_id': { body: () => ({ mode: 'native' }) },
  'PATCH /routes/tenants/:tenant_id/settings': { body: () => ({ fallback_message: 'changed by A' }) },
  'PUT /routes/tenants/:tenant_id/knowledge': { body: () => ({ entries: [{ title: 'A', content: 'A' }] }) },
  'PUT /routes/tenants/:tenant_id/ai': { body: () => aiProfile },
  'GET /routes/tenants/:tenant_id/ai': {},
  'DELETE /routes/tenants/:tenant_id/ai': {},
  'GET /routes/tenants/:tenant_id/ai/usage': {},
  'GET /routes/tenants/:tenant_id/ai/events': {},
  'POST /routes/tenants/:tenant_id/channels': { body: () => metaChannel('998877') },
  'GET /routes/tenants/:tenant_id/channels': { own: (s) => [{ url: t(s.a, '/channels'), expect: 'list' }] },
  'PUT /routes/tenants/:tenant_id/contacts': { body: (s) => ({ contacts: [{ phone: s.bPhone, opted_in: false }] }) },
  'GET /routes/tenants/:tenant_id/contacts': {
    query: (s) => `?phone=${encodeURIComponent(s.bPhone)}`,
    own: (s) => [{ url: t(s.a, `/contacts?phone=${encodeURIComponent(s.bPhone)}`), expect: 'list' }],
  },
  'DELETE /routes/tenants/:tenant_id/contacts': {
    query: (s) => `?phone=${encodeURIComponent(s.bPhone)}`,
    own: (s) => [{ url: t(s.a, `/contacts?phone=${encodeURIComponent(s.bPhone)}`) }],
  },
  'DELETE /routes/tenants/:tenant_id/contacts/:contact_id': { own: (s) => [{ url: t(s.a, `/contacts/${s.contact}`) }] },
  'GET /routes/tenants/:tenant_id/contacts/:contact_id/export': { own: (s) => [{ url: t(s.a, `/contacts/${s.contact}/export`) }] },
  'PUT /routes/tenants/:tenant_id/contacts/:contact_id/consent': {
    body: () => ({ opted_in: false, source: 'tenant-a' }),
    own: (s) => [{ url: t(s.a, `/contacts/${s.contact}/consent`), body: { opted_in: false, source: 'tenant-a' } }],
  },
  'PUT /routes/tenants/:tenant_id/retention': { body: () => ({ days: 1 }) },
  'GET /routes/tenants/:tenant_id/conversations': { own: (s) => [{ url: t(s.a, '/conversations'), expect: 'list' }] },
  'GET /routes/tenants/:tenant_id/conversations/:conversation_id': { own: (s) => [{ url: t(s.a, `/conversations/${s.conversation}`) }] },
  'POST /routes/tenants/:tenant_id/conversations/:conversation_id/resume-bot': {
    own: (s) => [{ url: t(s.a, `/conversations/${s.conversation}/resume-bot`) }],
  },
  'GET /routes/tenants/:tenant_id/messages/:message_id/media': { own: (s) => [{ url: t(s.a, `/messages/${s.message}/media`) }] },
  'GET /routes/tenants/:tenant_id/media/:media_id/content': { own: (s) => [{ url: t(s.a, `/media/${s.media}/content`) }] },
  'GET /routes/tenants/:tenant_id/sandbox/messages': {
    query: (s) => `?to=${encodeURIComponent(s.bPhone)}`,
    own: (s) => [{ url: t(s.a, `/sandbox/messages?to=${encodeURIComponent(s.bPhone)}`), expect: 'list' }],
  },
  'PUT /routes/tenants/:tenant_id/data-sources': { body: (s) => dataSources(s.source) },
  'GET /routes/tenants/:tenant_id/data-sources': { own: (s) => [{ url: t(s.a, '/data-sources'), expect: 'list' }] },
  'GET /routes/tenants/:tenant_id/data-sources/metrics': { own: (s) => [{ url: t(s.a, '/data-sources/metrics'), expect: 'list' }] },
  'POST /routes/tenants/:tenant_id/data-sources/:id/test': { own: (s) => [{ url: t(s.a, `/data-sources/${s.source}/test`) }] },
  'GET /routes/tenants/:tenant_id/data-worker/next': { own: (s) => [{ url: t(s.a, '/data-worker/next'), expect: 'list' }] },
  'POST /routes/tenants/:tenant_id/data-worker/lookups/:lookup_id/lease': {
    own: (s) => [{ url: t(s.a, `/data-worker/lookups/${s.lookup}/lease`) }],
  },
  'POST /routes/tenants/:tenant_id/data-worker/lookups/:lookup_id/result': {
    body: () => ({ ok: true, rows: [{ status: 'forged by A' }], source_ms: 1 }),
    own: (s) => [
      { url: t(s.a, `/data-worker/lookups/${s.lookup}/result`), body: { ok: true, rows: [{ status: 'forged by A' }], source_ms: 1 } },
    ],
  },
  'PATCH /routes/tenants/:tenant_id/channels/:channel_id': {
    body: () => ({ enabled: false }),
    own: (s) => [{ url: t(s.a, `/channels/${s.channel}`), body: { enabled: false } }],
  },
  'DELETE /routes/tenants/:tenant_id/channels/:channel_id': {
    query: () => '?force=true',
    own: (s) => [{ url: t(s.a, `/channels/${s.channel}?force=true`) }],
  },
  'POST /routes/tenants/:tenant_id/channels/sandbox/default': {},
  'PUT /routes/tenants/:tenant_id/intents': {
    body: (s) => intents(s.source),
    // B's source id in A's intents: refused as unknown for A (a 400 naming the field).
    own: (s) => [{ url: t(s.a, '/intents'), body: intents(s.source), expect: 400 }],
  },
  'GET /routes/tenants/:tenant_id/intents': { own: (s) => [{ url: t(s.a, '/intents'), expect: 'list' }] },
  'POST /routes/tenants/:tenant_id/keys': { body: () => ({ name: 'from A', scopes: ['admin'] }) },
  'GET /routes/tenants/:tenant_id/keys': { own: (s) => [{ url: t(s.a, '/keys'), expect: 'list' }] },
  'DELETE /routes/tenants/:tenant_id/keys/:id': { own: (s) => [{ url: t(s.a, `/keys/${s.key}`) }] },
  'POST /routes/tenants/:tenant_id/webhook-endpoints': {
    body: () => ({ url: 'https://hooks.example.com/a', events: ['message.received'] }),
  },
  'GET /routes/tenants/:tenant_id/webhook-endpoints': { own: (s) => [{ url: t(s.a, '/webhook-endpoints'), expect: 'list' }] },
  'GET /routes/tenants/:tenant_id/webhook-endpoints/:id': { own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}`) }] },
  'PATCH /routes/tenants/:tenant_id/webhook-endpoints/:id': {
    body: () => ({ description: 'by A' }),
    own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}`), body: { description: 'by A' } }],
  },
  'DELETE /routes/tenants/:tenant_id/webhook-endpoints/:id': { own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}`) }] },
  'POST /routes/tenants/:tenant_id/webhook-endpoints/:id/rotate-secret': {
    own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}/rotate-secret`) }],
  },
  'GET /routes/tenants/:tenant_id/webhook-endpoints/:id/deliveries': {
    own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}/deliveries`) }],
  },
  'POST /routes/tenants/:tenant_id/webhook-endpoints/:id/deliveries/:delivery_id/redeliver': {
    own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}/deliveries/${s.delivery}/redeliver`) }],
  },
  'POST /routes/tenants/:tenant_id/webhook-endpoints/:id/replay': {
    body: () => ({ since: '2020-01-01T00:00:00Z' }),
    own: (s) => [{ url: t(s.a, `/webhook-endpoints/${s.endpoint}/replay`), body: { since: '2020-01-01T00:00:00Z' } }],
  },
  'POST /routes/tenants/:tenant_id/knowledge/documents': { body: () => ({ title: 'from A', content: 'A' }) },
  'GET /routes/tenants/:tenant_id/knowledge/documents': { own: (s) => [{ url: t(s.a, '/knowledge/documents'), expect: 'list' }] },
  'GET /routes/tenants/:tenant_id/knowledge/documents/:document_id': {
    own: (s) => [{ url: t(s.a, `/knowledge/documents/${s.document}`) }],
  },
  'DELETE /routes/tenants/:tenant_id/knowledge/documents/:document_id': {
    own: (s) => [{ url: t(s.a, `/knowledge/documents/${s.document}`) }],
  },
  'POST /routes/tenants/:tenant_id/pulse/campaigns': { body: () => campaignBody },
  'GET /routes/tenants/:tenant_id/pulse/campaigns': { own: (s) => [{ url: t(s.a, '/pulse/campaigns'), expect: 'list' }] },
  'GET /routes/tenants/:tenant_id/pulse/campaigns/:id': { own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}`) }] },
  'PATCH /routes/tenants/:tenant_id/pulse/campaigns/:id': {
    body: () => ({ name: 'renamed by A' }),
    own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}`), body: { name: 'renamed by A' } }],
  },
  'DELETE /routes/tenants/:tenant_id/pulse/campaigns/:id': { own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}`) }] },
  'POST /routes/tenants/:tenant_id/pulse/campaigns/:id/pause': { own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}/pause`) }] },
  'POST /routes/tenants/:tenant_id/pulse/campaigns/:id/resume': { own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}/resume`) }] },
  'POST /routes/tenants/:tenant_id/pulse/campaigns/:id/trigger': {
    own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}/trigger`) }],
  },
  'GET /routes/tenants/:tenant_id/pulse/campaigns/:id/runs': { own: (s) => [{ url: t(s.a, `/pulse/campaigns/${s.campaign}/runs`) }] },
  'PUT /routes/tenants/:tenant_id/pulse/settings': { body: () => ({ opt_out_keywords: ['HALT'] }) },
  'GET /routes/tenants/:tenant_id/pulse/settings': {},
};

/** Routes that carry the tenant (or a job) in the body or take it from the key. */
const BODY_ROUTES: Record<string, (s: Seeded) => (Call & { method?: string })[]> = {
  'POST /webhook/inbound': (s) => [
    { url: '/webhook/inbound', body: { from: s.bPhone, message: 'from A', tenant_id: s.b, timestamp: new Date().toISOString() } },
  ],
  'POST /messages/send': (s) => [
    { url: '/messages/send', body: { to: s.bPhone, message: 'from A', tenant_id: s.b }, expect: 403 },
    { url: '/messages/send', body: { to: s.bPhone, message: 'from A', tenant_id: s.b, job_id: s.job }, expect: 403 },
  ],
  'POST /routes/tools/synthesis': (s) => [{ url: '/routes/tools/synthesis', body: { tenant_id: s.b, question: s.bText } }],
  'POST /routes/data/nl-query': (s) => [{ url: '/routes/data/nl-query', body: { tenant_id: s.b, question: 'order 4711' } }],
  'POST /routes/data/lookup': (s) => {
    const job = { job_type: 'data_lookup', query: 'order_status', parameters: { order_id: '4711' }, data_source: s.source };
    return [
      { url: '/routes/data/lookup', body: { ...job, tenant_id: s.b } },
      { url: '/routes/data/lookup', body: { ...job, tenant_id: s.a } },
    ];
  },
  'POST /routes/context/pulse-content': (s) => [
    { url: '/routes/context/pulse-content', body: { tenant_id: s.b, campaign_id: s.campaign, contact_id: s.contact } },
    { url: '/routes/context/pulse-content', body: { tenant_id: s.a, campaign_id: s.campaign, phone: s.bPhone } },
  ],
  'GET /queue/next-job': () => [{ url: '/queue/next-job', expect: 'list' }],
  'POST /queue/jobs': (s) => [
    {
      url: '/queue/jobs',
      body: { job_type: 'data_lookup', tenant_id: s.b, query: 'order status', parameters: { order_id: '1' }, data_source: s.source },
      expect: 403,
    },
  ],
  'GET /queue/jobs/:job_id': (s) => [{ url: `/queue/jobs/${s.job}` }],
  'POST /queue/jobs/:job_id/complete': (s) => [{ url: `/queue/jobs/${s.job}/complete`, body: {} }],
  'POST /queue/jobs/:job_id/fail': (s) => [{ url: `/queue/jobs/${s.job}/fail`, body: { error: 'from A' } }],
};

/** Not for tenant keys at all: the operator's routes answer 403, public ones authenticate otherwise. */
const OPERATOR_ROUTES = ['POST /routes/tenants', 'POST /codec/encode', 'POST /codec/decode'];
const PUBLIC_ROUTES = [
  'GET /',
  'GET /health',
  'GET /webhooks/meta',
  'POST /webhooks/meta',
  'POST /webhooks/twilio',
  'POST /webhooks/infobip/:channel_id',
];

describe('isolation matrix: tenant A against tenant B on every route', () => {
  let h: Harness;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let s: Seeded;

  before(async () => {
    h = await createHarness();
    a = await h.createTenant();
    b = await h.createTenant();
    const bPhone = uniquePhone();
    const bText = `B-secret ${Math.random().toString(36).slice(2)}`;
    const as = (method: string, url: string, body?: unknown) => h.request(method, url, { key: b.key, body });
    const ok = (res: { status: number; body: any }, what: string) => {
      assert.ok(res.status >= 200 && res.status < 300, `seeding ${what}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };

    ok(await as('PUT', t(b.id, '/data-sources'), dataSources('b-crm')), 'data sources');
    ok(await as('PUT', t(b.id, '/intents'), intents('b-crm')), 'intents');
    ok(
      await as('PUT', t(b.id, '/contacts'), { contacts: [{ phone: uniquePhone(), opted_in: true, name: 'Other B contact' }] }),
      'contacts',
    );
    const campaign = ok(await as('POST', t(b.id, '/pulse/campaigns'), campaignBody), 'campaign');
    const document = ok(await as('POST', t(b.id, '/knowledge/documents'), { title: 'B doc', content: bText }), 'document');
    const job = ok(
      await as('POST', '/queue/jobs', {
        job_type: 'data_lookup',
        tenant_id: b.id,
        query: 'order status',
        parameters: { order_id: '1' },
        data_source: 'b-crm',
      }),
      'job',
    );
    await h.ask(b, bText, bPhone);
    // After the reply: a Meta channel becomes the default and would send through Meta.
    const channel = ok(await as('POST', t(b.id, '/channels'), metaChannel('1122334455')), 'channel');
    const conversations = ok(await as('GET', t(b.id, '/conversations')), 'conversation list');
    const conversation = conversations.conversations[0];
    const { rows: messages } = await h.runtime.pool.query<{ id: string; channel_id: string }>(
      `SELECT m.id, c.channel_id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.tenant_id = $1 LIMIT 1`,
      [b.id],
    );
    // Media as a Meta webhook leaves it once downloaded: encrypted reference and content.
    const content = h.runtime.keyring.encryptColumnBytes(Buffer.from('B media bytes'), { tenantId: b.id, column: messageMedia.contentEnc });
    const { rows: media } = await h.runtime.pool.query<{ id: string }>(
      `INSERT INTO message_media (tenant_id, message_id, channel_id, kind, ref_enc, mime_type, status, size_bytes, content_enc, content_key, downloaded_at)
       VALUES ($1, $2, $3, 'image', $4, 'image/png', 'downloaded', 13, $5, $6, now()) RETURNING id`,
      [
        b.id,
        messages[0].id,
        messages[0].channel_id,
        h.runtime.keyring.encrypt('media-ref', { tenantId: b.id, column: messageMedia.refEnc }),
        Buffer.from(content.data),
        content.label,
      ],
    );
    const keys = ok(await as('GET', t(b.id, '/keys')), 'keys');
    // A lookup waiting for B's own data worker, as the dataLookup activity records it.
    const lookup = await recordRemoteLookup(
      h.runtime.db,
      h.runtime.keyring,
      {
        kind: 'lookup',
        tenantId: b.id,
        dataSourceId: 'b-crm',
        query: 'order_status',
        params: { order_id: '4711' },
        order: ['order_id'],
        timeoutMs: 2500,
      },
      { taskToken: new Uint8Array(16), activityId: 'x', workflowId: 'data/x', scheduledAt: new Date(), remainingMs: 600_000 },
    );
    // A webhook endpoint of B's with one settled delivery (nothing left for the relay to change).
    const endpoint = ok(
      await as('POST', t(b.id, '/webhook-endpoints'), { url: 'https://hooks.example.com/b', events: ['conversation.assigned'] }),
      'endpoint',
    );
    const { rows: deliveries } = await h.runtime.pool.query<{ id: string }>(
      `WITH e AS (INSERT INTO events (id, tenant_id, type, conversation_id) VALUES ('evt_isolation', $1, 'conversation.assigned', $3::uuid)
                  RETURNING id, seq)
       INSERT INTO event_deliveries (tenant_id, endpoint_id, event_id, event_seq, order_key, status, dispatched_generation)
       SELECT $1, $2::uuid, e.id, e.seq, $2::text || '/' || $3::text, 'failed', 0 FROM e RETURNING id`,
      [b.id, endpoint.id, conversation.id],
    );
    s = {
      a: a.id,
      b: b.id,
      bPhone,
      bText,
      conversation: conversation.id,
      contact: conversation.contact_id,
      message: messages[0].id,
      media: media[0].id,
      campaign: campaign.id,
      document: document.id,
      source: 'b-crm',
      job: job.job_id,
      channel: channel.id,
      key: keys.keys[0].id,
      lookup,
      endpoint: endpoint.id,
      delivery: deliveries[0].id,
    };
    // B's media opens for B: the seeded row is real.
    assert.equal((await as('GET', t(b.id, `/media/${s.media}/content`))).status, 200);
    // Nothing of B's may keep changing while the snapshots are compared.
    await h.stopWorker();
  });
  after(() => h?.close());

  /** Every row of B's in every table with a tenant column (api_keys.last_used_at is bookkeeping). */
  async function snapshotB(): Promise<Record<string, string[]>> {
    const { rows: tables } = await h.runtime.pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'tenant_id'`,
    );
    const out: Record<string, string[]> = {};
    for (const { table_name } of tables) {
      const { rows } = await h.runtime.pool.query<{ row: string }>(
        `SELECT (to_jsonb(x) - 'last_used_at')::text AS row FROM "${table_name}" x WHERE tenant_id = $1 ORDER BY 1`,
        [s.b],
      );
      out[table_name] = rows.map((r) => r.row);
    }
    return out;
  }

  /** Nothing of B's in the answer beyond what the caller sent (an error may name the id it was given). */
  function assertNoLeak(res: { body: unknown }, call: Call, where: string) {
    const text = JSON.stringify(res.body ?? '');
    const sent = call.url + JSON.stringify(call.body ?? '');
    for (const secret of [
      s.bPhone,
      s.bPhone.slice(1),
      s.bText,
      s.conversation,
      s.contact,
      s.campaign,
      s.document,
      s.job,
      s.media,
      s.key,
      s.lookup,
      s.endpoint,
      s.delivery,
    ]) {
      assert.ok(sent.includes(secret) || !text.includes(secret), `${where} leaks B's data (${secret})`);
    }
  }

  async function check(method: string, call: Call, route: string) {
    const res = await h.request(method, call.url, {
      key: a.key,
      body: call.body ?? (method === 'GET' || method === 'DELETE' ? undefined : {}),
    });
    const where = `${route} → ${method} ${call.url}`;
    if (call.expect === 'list') assert.ok(res.status === 200 || res.status === 204, `${where}: ${res.status} ${JSON.stringify(res.body)}`);
    else assert.equal(res.status, call.expect ?? 404, `${where}: ${res.status} ${JSON.stringify(res.body)}`);
    assertNoLeak(res, call, where);
  }

  it('has an entry for every registered route', () => {
    const listed = new Set([...Object.keys(TENANT_ROUTES), ...Object.keys(BODY_ROUTES), ...OPERATOR_ROUTES, ...PUBLIC_ROUTES]);
    const registered = h.api.app.routeCatalog
      .filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && !r.url.startsWith('/docs') && r.url !== '/openapi.json')
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(
      registered.filter((r) => !listed.has(r)),
      [],
      'routes without a matrix entry',
    );
    assert.deepEqual(
      [...listed].filter((r) => !registered.includes(r)),
      [],
      'matrix entries for routes that do not exist',
    );
  });

  it("A's key with B's real ids and valid bodies answers 404 (or 403) and changes none of B's rows", async () => {
    const before = await snapshotB();
    for (const [route, entry] of Object.entries(TENANT_ROUTES)) {
      const [method, url] = route.split(' ');
      const path = url.replace(/:([a-z_]+)/g, (_m, name: string) =>
        name === 'tenant_id'
          ? s.b
          : ((
              {
                conversation_id: s.conversation,
                contact_id: s.contact,
                message_id: s.message,
                media_id: s.media,
                document_id: s.document,
                channel_id: s.channel,
                lookup_id: s.lookup,
                delivery_id: s.delivery,
              } as Record<string, string>
            )[name] ??
            (url.includes('/webhook-endpoints/')
              ? s.endpoint
              : url.includes('/pulse/')
                ? s.campaign
                : url.includes('/keys/')
                  ? s.key
                  : s.source)),
      );
      await check(method, { url: path + (entry.query?.(s) ?? ''), body: entry.body?.(s) }, route);
      for (const call of entry.own?.(s) ?? []) await check(method, call, route);
    }
    for (const [route, calls] of Object.entries(BODY_ROUTES)) {
      const [method] = route.split(' ');
      for (const call of calls(s)) await check(method, call, route);
    }
    for (const route of OPERATOR_ROUTES) {
      const [method, url] = route.split(' ');
      const body = url.startsWith('/codec') ? { payloads: [] } : { id: `x-${s.b}`, name: 'X' };
      await check(method, { url, body, expect: 403 }, route);
    }
    assert.deepEqual(await snapshotB(), before, "B's rows are unchanged");
    // And B still works with its own key on what A tried to touch.
    assert.equal((await h.request('GET', t(s.b, `/pulse/campaigns/${s.campaign}`), { key: b.key })).status, 200);
    assert.equal((await h.request('GET', `/queue/jobs/${s.job}`, { key: b.key })).status, 200);
    assert.equal((await h.request('GET', t(s.b, `/contacts/${s.contact}/export`), { key: TEST_ADMIN_KEY })).status, 200);
  });

  it('a read key runs nothing that looks up data, calls the LLM or spends budget', async () => {
    // Structurally: a read route only reads.
    const writes = h.api.app.routeCatalog.filter((r) => r.auth === 'read' && r.method !== 'GET' && r.method !== 'HEAD');
    assert.deepEqual(writes, [], 'read-scoped routes that are not GET');
    const created = await h.request('POST', t(a.id, '/keys'), { key: a.key, body: { name: 'reader', scopes: ['read'] } });
    assert.equal(created.status, 201);
    const reader = created.body.key as string;
    const calls: [string, string, unknown?][] = [
      ['POST', '/routes/data/nl-query', { tenant_id: a.id, question: 'order 4711' }],
      ['POST', '/routes/context/pulse-content', { tenant_id: a.id, template: 'Hi {{first_name}}', contact: { name: 'Ann' } }],
      ['POST', '/routes/tools/synthesis', { tenant_id: a.id, question: 'opening hours?' }],
      [
        'POST',
        '/routes/data/lookup',
        { job_type: 'data_lookup', tenant_id: a.id, query: 'order_status', parameters: { order_id: '1' }, data_source: 'crm' },
      ],
      ['POST', t(a.id, '/data-sources/crm/test')],
      ['POST', t(a.id, `/pulse/campaigns/${randomUUID()}/trigger`)],
      ['POST', t(a.id, '/knowledge/documents'), { title: 'x', content: 'x' }],
      ['PUT', t(a.id, '/ai'), aiProfile],
      ['POST', '/webhook/inbound', { from: uniquePhone(), message: 'hi', tenant_id: a.id, timestamp: new Date().toISOString() }],
      ['POST', '/messages/send', { to: uniquePhone(), message: 'hi', tenant_id: a.id }],
    ];
    for (const [method, url, body] of calls) {
      const res = await h.request(method, url, { key: reader, body: body ?? (method === 'GET' ? undefined : {}) });
      assert.equal(res.status, 403, `${method} ${url} with a read key: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'FORBIDDEN');
    }
  });
});
