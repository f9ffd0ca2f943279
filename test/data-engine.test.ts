import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dataSources } from '../core/db/schema.js';
import { createHarness, testKeyring, TEST_ADMIN_KEY, waitFor, type Harness } from './helpers/harness.js';
import { fakeGraphql, fakeInventory, type FakeSource } from './helpers/fake-sources.js';
import { createMysqlCrm, createPgCrm, type Crm } from './helpers/tenant-crm.js';

const API_KEY = 'inv-secret-key-4242';
const GQL_TOKEN = 'gql-secret-token-9191';
const FALLBACK = 'A human will get back to you.';
const STOCK_FALLBACK = 'Our inventory system is not answering right now; we will get back to you.';
const PHONE_WITH_APPOINTMENT = '+15550001111';

describe('data engine: live lookups', () => {
  let h: Harness;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let crmA: Crm;
  let crmB: Crm;
  let mysqlCrm: Crm | undefined;
  let mysqlSkip: string | undefined;
  let inventory: FakeSource;
  let gql: FakeSource;

  const pgPassword = (crm: Crm) => crm.connection.password ?? 'pg-secret-password';
  const sourcesFor = (crm: Crm) => [
    {
      id: 'primary_crm',
      name: 'Customer Database',
      type: 'postgresql',
      // The server's real password where it needs one (embedded PostgreSQL); a stand-in under trust auth.
      connection: { ...crm.connection, password: pgPassword(crm) },
      queries: {
        order_status: 'SELECT status, tracking_number FROM orders WHERE order_id = $1',
        next_appointment: 'SELECT starts_at, with_whom FROM appointments WHERE customer_phone = $1 ORDER BY starts_at LIMIT 1',
        order_by_number: 'SELECT status FROM orders WHERE order_id::int = $1::int',
      },
    },
  ];

  const ask = (tenant: { id: string; key: string }, message: string, from?: string) => h.ask(tenant, message, from);

  async function logs(tenantId: string) {
    const r = await h.runtime.pool.query('SELECT * FROM data_access_logs WHERE tenant_id = $1 ORDER BY accessed_at', [tenantId]);
    return r.rows;
  }

  before(async () => {
    h = await createHarness();
    inventory = await fakeInventory(API_KEY).start();
    gql = await fakeGraphql(GQL_TOKEN).start();
    crmA = await createPgCrm({
      orders: [
        { order_id: '12345', status: 'shipped', tracking_number: 'UPS123456', customer_phone: PHONE_WITH_APPOINTMENT },
        { order_id: '777', status: 'processing', tracking_number: '', customer_phone: '+15550002222' },
      ],
      appointments: [
        { customer_phone: PHONE_WITH_APPOINTMENT, starts_at: '2025-09-12 10:00', with_whom: 'Dr. Ana' },
        { customer_phone: '+15550002222', starts_at: '2025-09-13 11:00', with_whom: 'Dr. Bo' },
      ],
    });
    crmB = await createPgCrm({
      orders: [{ order_id: '12345', status: 'B-only-status', tracking_number: 'B', customer_phone: '+15550003333' }],
    });
    const my = await createMysqlCrm({
      orders: [{ order_id: 'M-1', status: 'delivered', tracking_number: 'DHL1', customer_phone: '+15550004444' }],
    });
    if (typeof my === 'string') mysqlSkip = my;
    else mysqlCrm = my;

    a = await h.createTenant(undefined, { fallback_message: FALLBACK });
    b = await h.createTenant(undefined, { fallback_message: FALLBACK });
    const put = await h.request('PUT', `/routes/tenants/${a.id}/data-sources`, {
      key: a.key,
      body: {
        data_sources: [
          ...sourcesFor(crmA),
          {
            id: 'inventory_api',
            name: 'Inventory System',
            type: 'rest_api',
            connection: {
              base_url: `${inventory.url}/api`,
              api_key: API_KEY,
              headers: { Authorization: 'Bearer {api_key}' },
              timeout_ms: 600,
            },
            endpoints: { check_stock: '/products/{sku}/stock', product_details: '/products/{sku}' },
          },
          {
            id: 'catalog',
            name: 'Catalog (GraphQL)',
            type: 'graphql',
            connection: { url: `${gql.url}/graphql`, token: GQL_TOKEN, headers: { 'X-Api-Token': '{token}' } },
            queries: { product: 'query ($sku: String!) { product(sku: $sku) { name quantity } }' },
          },
          ...(mysqlCrm
            ? [
                {
                  id: 'shop_mysql',
                  name: 'Shop (MariaDB)',
                  type: 'mysql',
                  connection: mysqlCrm.connection,
                  queries: { order_status: 'SELECT status, tracking_number FROM orders WHERE order_id = $1' },
                },
              ]
            : []),
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const intents = await h.request('PUT', `/routes/tenants/${a.id}/intents`, {
      key: a.key,
      body: {
        intents: [
          {
            id: 'order_free_text',
            patterns: ['^lookup order (?<order_id>.+)$'],
            data_source: 'primary_crm',
            query: 'order_status',
            params: ['order_id'],
            reply_template: 'Order {{order_id}}: {{status}}',
            not_found_message: 'We could not find that order.',
          },
          {
            id: 'order_status',
            patterns: ['order #?(?<order_id>\\d+)'],
            data_source: 'primary_crm',
            query: 'order_status',
            params: ['order_id'],
            reply_template: 'Your order #{{order_id}} is {{status}} (tracking {{tracking_number}})',
            not_found_message: 'We could not find that order.',
          },
          {
            id: 'appointment',
            patterns: ['next appointment'],
            data_source: 'primary_crm',
            query: 'next_appointment',
            params: ['customer_phone'],
            reply_template: 'Your next appointment is on {{starts_at}} with {{with_whom}}',
          },
          {
            id: 'stock',
            patterns: ['is (?<sku>SKU[- ][\\w/ ]+?) in stock'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: '{{name}}: {{quantity}} in stock',
            fallback_message: STOCK_FALLBACK,
          },
          {
            id: 'gql',
            patterns: ['how many (?<sku>SKU-\\d+)'],
            data_source: 'catalog',
            query: 'product',
            params: ['sku'],
            reply_template: 'We have {{quantity}} of {{name}}',
          },
          {
            id: 'order_number',
            patterns: ['^order number (?<n>.+)$'],
            data_source: 'primary_crm',
            query: 'order_by_number',
            params: ['n'],
            reply_template: '{{status}}',
          },
          ...(mysqlCrm
            ? [
                {
                  id: 'shop',
                  patterns: ['shop order (?<order_id>.+)$'],
                  data_source: 'shop_mysql',
                  query: 'order_status',
                  params: ['order_id'],
                  reply_template: 'Shop order {{order_id}} is {{status}}',
                  not_found_message: 'No such shop order.',
                },
              ]
            : []),
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    assert.equal(intents.body.count, mysqlCrm ? 7 : 6);

    assert.equal(
      (await h.request('PUT', `/routes/tenants/${b.id}/data-sources`, { key: b.key, body: { data_sources: sourcesFor(crmB) } })).status,
      200,
    );
    const bIntents = await h.request('PUT', `/routes/tenants/${b.id}/intents`, {
      key: b.key,
      body: {
        intents: [
          {
            id: 'order_status',
            patterns: ['order #?(?<order_id>\\d+)'],
            data_source: 'primary_crm',
            query: 'order_status',
            params: ['order_id'],
            reply_template: 'B says {{status}}',
          },
        ],
      },
    });
    assert.equal(bIntents.status, 200);
  });

  after(async () => {
    await h?.close();
    await inventory?.stop();
    await gql?.stop();
    await crmA?.drop();
    await crmB?.drop();
    await mysqlCrm?.drop();
  });

  it('GET redacts every secret; the database holds them only encrypted; "********" keeps a secret on PUT', async () => {
    const res = await h.request('GET', `/routes/tenants/${a.id}/data-sources`, { key: a.key });
    assert.equal(res.status, 200);
    const text = JSON.stringify(res.body);
    for (const secret of [pgPassword(crmA), API_KEY, GQL_TOKEN]) assert.ok(!text.includes(secret), 'secret not shown');
    const inv = res.body.data_sources.find((s: any) => s.id === 'inventory_api');
    assert.equal(inv.connection.api_key, '********');
    assert.equal(inv.connection.headers.Authorization, '********');
    assert.equal(inv.endpoints.check_stock, '/products/{sku}/stock');
    const raw = await h.runtime.pool.query('SELECT config::text, credentials_enc FROM data_sources WHERE tenant_id = $1', [a.id]);
    const dump = JSON.stringify(raw.rows);
    for (const secret of [pgPassword(crmA), API_KEY, GQL_TOKEN]) assert.ok(!dump.includes(secret), 'secret not stored in clear');

    // Round trip of the redacted view keeps the secrets: the REST lookup still authenticates.
    const back = res.body.data_sources.map(({ updated_at: _u, ...s }: any) => s);
    assert.equal(
      (await h.request('PUT', `/routes/tenants/${a.id}/data-sources`, { key: a.key, body: { data_sources: back } })).status,
      200,
    );
    const stored = JSON.parse(
      testKeyring().decrypt(
        (await h.runtime.pool.query("SELECT credentials_enc FROM data_sources WHERE tenant_id = $1 AND id = 'inventory_api'", [a.id]))
          .rows[0].credentials_enc,
        { tenantId: a.id, column: dataSources.credentialsEnc },
      ),
    );
    assert.equal(stored.api_key, API_KEY);
    assert.equal(stored.headers.Authorization, 'Bearer {api_key}');

    // Rotation: a new key takes effect on the next lookup (the source refuses the wrong one).
    const rotate = (apiKey: string) =>
      h.request('PUT', `/routes/tenants/${a.id}/data-sources`, {
        key: a.key,
        body: {
          data_sources: back.map((s: any) => (s.id === 'inventory_api' ? { ...s, connection: { ...s.connection, api_key: apiKey } } : s)),
        },
      });
    const stock = () =>
      h.request('POST', '/routes/data/nl-query', { key: a.key, body: { tenant_id: a.id, question: 'is SKU-789 in stock?' } });
    inventory.setMode('ok');
    // Workers reuse a source's configuration for up to a second, so the change shows within that.
    assert.equal((await rotate('a-wrong-key-000')).status, 200);
    const refused = await waitFor(
      async () => {
        const r = await stock();
        return r.body.result.ok === false && r;
      },
      { timeoutMs: 15_000, what: 'the rotated (wrong) key to be used' },
    );
    assert.match(refused.body.result.error, /HTTP 401/);
    assert.equal((await rotate(API_KEY)).status, 200);
    await waitFor(async () => (await stock()).body.reply === 'Blue kettle: 14 in stock', { timeoutMs: 15_000, what: 'the restored key' });
  });

  it('refuses bad configuration with 400 naming the field', async () => {
    const put = (data_sources: unknown[]) =>
      h.request('PUT', `/routes/tenants/${b.id}/data-sources`, { key: b.key, body: { data_sources } });
    const base = { id: 'x', name: 'X', connection: { host: 'h', database: 'd', username: 'u' } };
    const cases: [unknown[], string][] = [
      [[{ ...base, type: 'oracle', queries: { q: 'SELECT 1' } }], 'body.data_sources.0.type'],
      [
        [{ ...base, type: 'postgresql', queries: { order_status: "SELECT * FROM orders WHERE order_id = '{order_id}'" } }],
        'body.data_sources.0.queries.order_status',
      ],
      [
        [{ ...base, type: 'postgresql', queries: { q: 'SELECT * FROM orders WHERE order_id = ${order_id}' } }],
        'body.data_sources.0.queries.q',
      ],
      [[{ ...base, type: 'mysql', queries: { q: 'SELECT * FROM orders WHERE order_id = ?' } }], 'body.data_sources.0.queries.q'],
      [[{ ...base, type: 'postgresql', queries: { q: 'DELETE FROM orders WHERE order_id = $1' } }], 'body.data_sources.0.queries.q'],
      // A data-modifying CTE is refused here; were one to get through, the READ ONLY transaction stops it (containment-sql).
      [
        [{ ...base, type: 'postgresql', queries: { purge: 'WITH d AS (DELETE FROM orders RETURNING order_id) SELECT order_id FROM d' } }],
        'body.data_sources.0.queries.purge',
      ],
      [
        [{ id: 'r', name: 'R', type: 'rest_api', connection: { base_url: 'http://x' }, endpoints: { e: '/products/{sku-id}' } }],
        'body.data_sources.0.endpoints.e',
      ],
      [
        [
          {
            id: 'r',
            name: 'R',
            type: 'rest_api',
            connection: { base_url: 'http://x', api_key: 'k' },
            endpoints: { e: '/p?key={api_key}' },
          },
        ],
        'body.data_sources.0.endpoints.e',
      ],
      [
        [
          {
            id: 'r',
            name: 'R',
            type: 'rest_api',
            connection: { base_url: 'http://x', headers: { Authorization: 'Bearer {apikey}' } },
            endpoints: { e: '/p' },
          },
        ],
        'body.data_sources.0.connection.headers.Authorization',
      ],
      [
        [{ id: 'g', name: 'G', type: 'graphql', connection: { url: 'http://x' }, queries: { m: 'mutation { wipe }' } }],
        'body.data_sources.0.queries.m',
      ],
    ];
    for (const [body, path] of cases) {
      const res = await put(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.ok(res.body.error.message.startsWith(`${path}:`), `${res.body.error.message} names ${path}`);
    }
    // Nothing changed: B still answers from its own source.
    const get = await h.request('GET', `/routes/tenants/${b.id}/data-sources`, { key: b.key });
    assert.deepEqual(
      get.body.data_sources.map((s: any) => s.id),
      ['primary_crm'],
    );
  });

  it("refuses intents that name another tenant's source, a missing query or mismatched params", async () => {
    const put = (intent: Record<string, unknown>) =>
      h.request('PUT', `/routes/tenants/${b.id}/intents`, {
        key: b.key,
        body: {
          intents: [
            {
              id: 'i',
              patterns: ['order (?<order_id>\\d+)'],
              data_source: 'primary_crm',
              query: 'order_status',
              params: ['order_id'],
              reply_template: 'x',
              ...intent,
            },
          ],
        },
      });
    const cases: [Record<string, unknown>, string][] = [
      [{ data_source: 'inventory_api', query: 'check_stock', params: ['sku'], patterns: ['(?<sku>\\w+)'] }, 'body.intents.0.data_source'],
      [{ query: 'drop_tables' }, 'body.intents.0.query'],
      [{ params: ['order_id', 'customer_phone'] }, 'body.intents.0.params'],
      [{ params: ['sku'] }, 'body.intents.0.patterns.0'],
      [{ patterns: ['order (?<order_id>\\d+'] }, 'body.intents.0.patterns.0'],
    ];
    for (const [intent, path] of cases) {
      const res = await put(intent);
      assert.equal(res.status, 400, JSON.stringify(intent));
      assert.ok(res.body.error.message.startsWith(`${path}:`), `${res.body.error.message} names ${path}`);
    }
  });

  it('tests connectivity: latency, or the error without the credentials', async () => {
    const ok = await h.request('POST', `/routes/tenants/${a.id}/data-sources/primary_crm/test`, { key: a.key });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.ok, true, JSON.stringify(ok.body));
    assert.equal(typeof ok.body.latency_ms, 'number');
    const rest = await h.request('POST', `/routes/tenants/${a.id}/data-sources/inventory_api/test`, { key: a.key });
    assert.equal(rest.body.ok, true);

    const broken = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${broken.id}/data-sources`, {
      key: broken.key,
      body: {
        data_sources: [
          { ...sourcesFor(crmA)[0], connection: { ...crmA.connection, database: 'no_such_db_here', password: pgPassword(crmA) } },
        ],
      },
    });
    const bad = await h.request('POST', `/routes/tenants/${broken.id}/data-sources/primary_crm/test`, { key: broken.key });
    assert.equal(bad.status, 200);
    assert.equal(bad.body.ok, false);
    // The server's own text is not kept (it can quote a row); its SQLSTATE is.
    assert.match(bad.body.error, /SQLSTATE 3D000 \(invalid catalog name\) from the source/);
    assert.ok(!JSON.stringify(bad.body).includes(pgPassword(crmA)));
    assert.equal((await h.request('POST', `/routes/tenants/${a.id}/data-sources/nope/test`, { key: a.key })).status, 404);
  });

  it('answers an order question in the conversation from the tenant database, and logs it by keyed hash', async () => {
    const r = await ask(a, 'Hi, what is the status of order #12345?');
    assert.equal(r.text, 'Your order #12345 is shipped (tracking UPS123456)');
    const row = (await logs(a.id)).find(
      (l) => l.query_type === 'order_status' && l.customer_identifier === testKeyring().blindIndex(r.from),
    );
    assert.ok(row, 'a log row keyed by the hashed phone');
    assert.equal(row.outcome, 'ok');
    assert.equal(row.data_source_id, 'primary_crm');
    assert.equal(typeof row.response_time_ms, 'number');
    assert.ok(!JSON.stringify(await logs(a.id)).includes(r.from.slice(1)), 'no phone number in the audit log');
    assert.equal((await ask(a, 'where is order 999?')).text, 'We could not find that order.');
  });

  it("uses the customer's own phone number as a parameter", async () => {
    const r = await ask(a, 'When is my next appointment?', PHONE_WITH_APPOINTMENT);
    assert.equal(r.text, 'Your next appointment is on 2025-09-12 10:00 with Dr. Ana');
  });

  it('answers from the REST API with the configured auth header and URL-encoded parameters', async () => {
    inventory.setMode('ok');
    assert.equal((await ask(a, 'is SKU-789 in stock?')).text, 'Blue kettle: 14 in stock');
    assert.equal(inventory.seen[0].url, '/api/products/SKU-789/stock');
    assert.equal(inventory.seen[0].headers.authorization, `Bearer ${API_KEY}`);
    inventory.setMode('ok');
    assert.equal((await ask(a, 'is SKU 1/2 in stock?')).text, 'Half widget: 0 in stock');
    assert.equal(inventory.seen[0].url, '/api/products/SKU%201%2F2/stock', 'the slash cannot change the path');
  });

  it('answers from GraphQL (variables, not interpolation) through nl-query', async () => {
    gql.setMode('ok');
    const res = await h.request('POST', '/routes/data/nl-query', {
      key: a.key,
      body: { tenant_id: a.id, question: 'how many SKU-789 do you have?' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.intent, 'gql');
    assert.equal(res.body.data_source, 'catalog');
    assert.deepEqual(res.body.parameters, { sku: 'SKU-789' });
    assert.equal(res.body.result.ok, true);
    assert.deepEqual(res.body.result.rows, [{ name: 'Blue kettle', quantity: 14 }]);
    assert.equal(res.body.reply, 'We have 14 of Blue kettle');
    assert.deepEqual(JSON.parse(gql.seen[0].body).variables, { sku: 'SKU-789' });
    const none = await h.request('POST', '/routes/data/nl-query', { key: a.key, body: { tenant_id: a.id, question: 'tell me a joke' } });
    assert.equal(none.body.matched, false);
  });

  it('answers from MySQL/MariaDB', async (t) => {
    if (!mysqlCrm) {
      t.skip(`skipping MySQL cases: ${mysqlSkip}`);
      return;
    }
    assert.equal((await ask(a, 'shop order M-1')).text, 'Shop order M-1 is delivered');
    // Injection through a bound parameter: no rows, the table untouched.
    assert.equal((await ask(a, "shop order M-1' OR '1'='1")).text, 'No such shop order.');
    assert.equal((await ask(a, 'shop order M-1; DROP TABLE orders; --')).text, 'No such shop order.');
    assert.equal((await mysqlCrm.query('SELECT COUNT(*) AS n FROM orders'))[0].n, 1);
  });

  it('SQL injection attempts in parameters have no effect', async () => {
    for (const attack of ["12345' OR '1'='1", '12345; DROP TABLE orders; --', "x' UNION SELECT current_user, 'x"]) {
      const res = await h.request('POST', '/routes/data/nl-query', {
        key: a.key,
        body: { tenant_id: a.id, question: `lookup order ${attack}` },
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.intent, 'order_free_text');
      assert.equal(res.body.parameters.order_id, attack);
      assert.equal(res.body.result.ok, true);
      assert.deepEqual(res.body.result.rows, [], `no rows for ${attack}`);
      assert.equal(res.body.reply, 'We could not find that order.');
    }
    assert.equal((await crmA.query('SELECT COUNT(*)::int AS n FROM orders'))[0].n, 2);
    // A database error that would echo the customer's input does not carry it into history, logs or the audit row.
    const echo = await h.request('POST', '/routes/data/nl-query', {
      key: a.key,
      body: { tenant_id: a.id, question: 'order number call me at 555-0199' },
    });
    assert.equal(echo.body.result.ok, false);
    assert.match(echo.body.result.error, /^BadRequest: SQLSTATE 22P02 \(data exception\) from the source$/);
    assert.ok(!echo.body.result.error.includes('555-0199'), echo.body.result.error);
    const audit = await logs(a.id);
    assert.ok(audit.some((l) => l.query_type === 'order_by_number' && l.outcome === 'error'));
    assert.ok(!JSON.stringify(audit).includes('555-0199'));
  });

  it("tenant A never runs tenant B's queries", async () => {
    // Same source id and question: each tenant's answer comes from its own database.
    assert.equal((await ask(b, 'order #12345 please')).text, 'B says B-only-status');
    assert.equal((await ask(a, 'order #12345 please')).text, 'Your order #12345 is shipped (tracking UPS123456)');
    // A's key cannot reach B's lookups, configuration or metrics.
    const nl = await h.request('POST', '/routes/data/nl-query', { key: a.key, body: { tenant_id: b.id, question: 'order #12345' } });
    assert.equal(nl.status, 404);
    const job = await h.request('POST', '/routes/data/lookup', {
      key: a.key,
      body: {
        job_type: 'data_lookup',
        tenant_id: b.id,
        query: 'order_status',
        parameters: { order_id: '12345' },
        data_source: 'primary_crm',
      },
    });
    assert.equal(job.status, 404);
    assert.equal((await h.request('GET', `/routes/tenants/${b.id}/data-sources`, { key: a.key })).status, 404);
    assert.equal((await h.request('POST', `/routes/tenants/${b.id}/data-sources/primary_crm/test`, { key: a.key })).status, 404);
    // A source id only B has does not exist for A.
    const bOnly = await h.request('PUT', `/routes/tenants/${b.id}/data-sources`, {
      key: b.key,
      body: { data_sources: [...sourcesFor(crmB), { ...sourcesFor(crmB)[0], id: 'b_private' }] },
    });
    assert.equal(bOnly.status, 200);
    const steal = await h.request('POST', '/routes/data/lookup', {
      key: a.key,
      body: {
        job_type: 'data_lookup',
        tenant_id: a.id,
        query: 'order_status',
        parameters: { order_id: '12345' },
        data_source: 'b_private',
      },
    });
    assert.equal(steal.status, 404);
  });

  it("runs the seed's data_lookup payload natively", async () => {
    const res = await h.request('POST', '/routes/data/lookup', {
      key: TEST_ADMIN_KEY,
      body: {
        job_type: 'data_lookup',
        tenant_id: a.id,
        query: 'order_status',
        parameters: { order_id: '12345', customer_phone: '+1234567890' },
        data_source: 'primary_crm',
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.rows, [{ status: 'shipped', tracking_number: 'UPS123456' }]);
  });

  it('a flaky source answers after retries', async () => {
    inventory.setMode('flaky');
    const r = await ask(a, 'is SKU-789 in stock?');
    assert.equal(r.text, 'Blue kettle: 14 in stock');
    assert.equal(inventory.seen.length, 3, 'two failures, then the answer');
  });

  it('a down source gets the fallback reply within 10 s and an error log row', async () => {
    inventory.setMode('down');
    const r = await ask(a, 'is SKU-789 in stock?');
    assert.equal(r.text, STOCK_FALLBACK);
    assert.ok(r.ms < 10_000, `fallback after ${r.ms} ms`);
    assert.ok(inventory.seen.length >= 3, `retried (${inventory.seen.length} attempts)`);
    const row = (await logs(a.id)).find((l) => l.customer_identifier === testKeyring().blindIndex(r.from));
    assert.equal(row.outcome, 'error');
    assert.match(row.error, /HTTP 503/);
  });

  it('a slow source times out into the fallback within 10 s', async () => {
    inventory.setMode('slow');
    inventory.slowMs = 5000;
    const r = await ask(a, 'is SKU-789 in stock?');
    assert.equal(r.text, STOCK_FALLBACK);
    assert.ok(r.ms < 10_000, `fallback after ${r.ms} ms`);
  });

  it('a 404 is not retried', async () => {
    inventory.setMode('not_found');
    const r = await ask(a, 'is SKU-789 in stock?');
    assert.equal(r.text, STOCK_FALLBACK);
    assert.equal(inventory.seen.length, 1);
    const row = (await logs(a.id)).find((l) => l.customer_identifier === testKeyring().blindIndex(r.from));
    assert.match(row.error, /BadRequest: HTTP 404/);
    inventory.setMode('ok');
  });

  it('reports per-source hourly metrics', async () => {
    const res = await h.request('GET', `/routes/tenants/${a.id}/data-sources/metrics`, { key: a.key });
    assert.equal(res.status, 200);
    const inv = res.body.metrics.find((m: any) => m.data_source_id === 'inventory_api');
    assert.ok(inv.query_count >= 5);
    assert.ok(inv.error_count >= 3);
    assert.equal(typeof inv.avg_response_time, 'number');
    assert.ok(res.body.metrics.every((m: any) => !Number.isNaN(Date.parse(m.hour))));
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = await h.request('GET', '/openapi.json');
    for (const p of [
      '/routes/tenants/{tenant_id}/data-sources',
      '/routes/tenants/{tenant_id}/intents',
      '/routes/data/nl-query',
      '/routes/tenants/{tenant_id}/data-sources/metrics',
    ]) {
      assert.ok(doc.body.paths[p], p);
    }
  });
});
