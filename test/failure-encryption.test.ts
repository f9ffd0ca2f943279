import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { createHarness, waitFor, type Harness } from './helpers/harness.js';
import { FakeSource } from './helpers/fake-sources.js';
import { createPgCrm, type Crm } from './helpers/tenant-crm.js';

/**
 * A tenant source whose error quotes a row (another customer's name and phone number) must not
 * leave that text in clear anywhere Parley stores it: no Postgres row, no Temporal history. Both
 * are read raw: every table as JSON, every history through a client without the payload codec.
 */
const NAME = 'Jane Doe';
const PHONE = '+15557654321';
const FALLBACK = 'A human will get back to you.';

/** Proto bytes (payload data) as text, so that plaintext inside a payload is visible to a search. */
function rawJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    const asBuffer = v as { type?: unknown; data?: unknown } | null;
    if (asBuffer?.type === 'Buffer' && Array.isArray(asBuffer.data)) return Buffer.from(asBuffer.data as number[]).toString('utf8');
    return v;
  });
}

describe('failures are encrypted too', () => {
  let h: Harness;
  let crm: Crm;
  let people: FakeSource;
  let tenant: { id: string; key: string };

  before(async () => {
    h = await createHarness();
    // The row's own text ends up in PostgreSQL's error: invalid input syntax for type integer: "Jane Doe +1555…".
    crm = await createPgCrm({ orders: [{ order_id: '4242', status: NAME, tracking_number: PHONE, customer_phone: '+15550009999' }] });
    // A REST source that answers 4xx/5xx with a body naming the person.
    people = await new FakeSource((req) => ({
      status: Number(/^\/api\/people\/(\d{3})\//.exec(req.url)?.[1] ?? 500),
      body: { error: `no access to ${NAME} (${PHONE})` },
    })).start();
    tenant = await h.createTenant(undefined, { fallback_message: FALLBACK });
    const put = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
      key: tenant.key,
      body: {
        data_sources: [
          {
            id: 'crm',
            name: 'CRM',
            type: 'postgresql',
            connection: { ...crm.connection, password: crm.connection.password ?? 'pg-secret-password' },
            queries: { order_echo: "SELECT (status || ' ' || tracking_number)::int AS n FROM orders WHERE order_id = $1" },
          },
          {
            id: 'people_api',
            name: 'People',
            type: 'rest_api',
            connection: { base_url: `${people.url}/api`, timeout_ms: 600 },
            endpoints: { person_422: '/people/422/{id}', person_500: '/people/500/{id}', person_404: '/people/404/{id}' },
          },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const intents = await h.request('PUT', `/routes/tenants/${tenant.id}/intents`, {
      key: tenant.key,
      body: {
        intents: [
          {
            id: 'order_echo',
            patterns: ['^check order (?<order_id>\\d+)$'],
            data_source: 'crm',
            query: 'order_echo',
            params: ['order_id'],
            reply_template: 'Order {{n}}',
          },
          ...[422, 500, 404].map((status) => ({
            id: `person_${status}`,
            patterns: [`^person ${status} (?<id>\\d+)$`],
            data_source: 'people_api',
            query: `person_${status}`,
            params: ['id'],
            reply_template: 'Person {{name}}',
          })),
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
  });

  after(async () => {
    await h?.close();
    await crm?.drop();
    await people?.stop();
  });

  it('a source error quoting a row leaves no plaintext in Postgres or in Temporal histories', { timeout: 120_000 }, async () => {
    // In conversations (a local activity inside the conversation workflow)…
    for (const question of ['check order 4242', 'person 422 7', 'person 500 7']) {
      assert.equal((await h.ask(tenant, question)).text, FALLBACK, question);
    }
    // …and as lookup workflows of their own.
    for (const question of ['check order 4242', 'person 404 7']) {
      const res = await h.request('POST', '/routes/data/nl-query', { key: tenant.key, body: { tenant_id: tenant.id, question } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.result.ok, false);
      assert.doesNotMatch(res.body.result.error, /Jane|5557654321/);
    }
    assert.ok(people.seen.length >= 3, 'the REST source was asked');

    const { rows: tables } = await h.runtime.pool.query<{ schema: string; name: string }>(
      `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    let database = '';
    for (const t of tables) {
      const { rows } = await h.runtime.pool.query(`SELECT row_to_json(t)::text AS row FROM "${t.schema}"."${t.name}" t`);
      database += rows.map((r: { row: string }) => r.row).join('\n');
    }
    // The audit rows are there and keep a stable code (the scan sees plaintext where there is some).
    assert.match(database, /SQLSTATE 22P02/);
    assert.match(database, /HTTP 422 from the source/);
    assert.match(database, /HTTP 500 from the source/);

    // Every workflow of this harness's task queue, read without the codec.
    const connection = await Connection.connect({ address: h.config.TEMPORAL_ADDRESS! });
    try {
      const raw = new Client({ connection, namespace: 'default' });
      const ids = await waitFor(
        async () => {
          const found: string[] = [];
          for await (const wf of raw.workflow.list({ query: `TaskQueue = '${h.config.TEMPORAL_TASK_QUEUE}'` })) found.push(wf.workflowId);
          return found.length >= 5 && found;
        },
        { timeoutMs: 20_000, what: 'the conversation and lookup workflows to be listed' },
      );
      let histories = '';
      for (const id of ids) histories += rawJson((await raw.workflow.getHandle(id).fetchHistory()).events);
      // The lookups' failures are in the histories, their messages and stacks encoded.
      assert.match(histories, /"encodedAttributes"/);
      assert.doesNotMatch(histories, /"message":"[^"]*(SQLSTATE|HTTP \d{3})/);
      for (const secret of [NAME, PHONE, PHONE.slice(1)]) {
        assert.ok(!database.includes(secret), `Postgres holds "${secret}" in clear`);
        assert.ok(!histories.includes(secret), `a Temporal history holds "${secret}" in clear`);
      }
    } finally {
      await connection.close();
    }
  });
});
