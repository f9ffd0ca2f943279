import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import proto from '@temporalio/proto';
import pg from 'pg';
import { eraseContact } from '../core/privacy/erasure.js';
import { freePort } from '../scripts/lib/ports.js';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const { temporal } = proto;
const ANSWER = 'Our store on Harbour Street opens at 8am every weekday.';

/** Every row of every table, as text: what someone with a database dump would read. */
async function dumpDatabase(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`,
    );
    const out: Record<string, string> = {};
    for (const { tablename } of tables) {
      const { rows } = await client.query<{ t: string }>(`SELECT t::text AS t FROM "${tablename}" t`);
      out[tablename] = rows.map((r) => r.t).join('\n');
    }
    return out;
  } finally {
    await client.end();
  }
}

describe('privacy: encryption at rest, logs, erasure, export, consent', () => {
  let h: Harness;
  let t: { id: string; key: string };
  let raw: Client;
  const phone = uniquePhone();
  const text = `My card ends 4242 and I live at 7 Birch Lane ${Math.random().toString(36).slice(2, 8)}, when do you open?`;
  let conversationId: string;
  let contactId: string;
  let workflowId: string;
  let newKey: string;

  before(async () => {
    h = await createHarness();
    t = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${t.id}/knowledge`, {
      key: t.key,
      body: { entries: [{ title: 'Opening hours open', content: ANSWER }] },
    });
    const res = await h.inbound(t.key, { from: phone, message: text, tenant_id: t.id, timestamp: new Date().toISOString() });
    assert.equal(res.status, 202);
    conversationId = res.body.conversation_id;
    const sent = await waitFor(
      async () => {
        const m = await h.sandbox(t.id, t.key, phone);
        return m.length > 0 && m;
      },
      { timeoutMs: 30_000, what: 'the reply' },
    );
    assert.equal(sent[0].text, ANSWER);
    const conv = await h.request('GET', `/routes/tenants/${t.id}/conversations/${conversationId}`, { key: t.key });
    contactId = conv.body.contact_id;
    workflowId = conv.body.workflow_id;
    const k = await h.request('POST', `/routes/tenants/${t.id}/keys`, { key: t.key, body: { name: 'ci', scopes: ['messages'] } });
    newKey = k.body.key;
    // A client without the payload codec sees exactly what the Temporal server stores.
    raw = new Client({
      connection: await Connection.connect({ address: h.config.TEMPORAL_ADDRESS! }),
      namespace: h.config.TEMPORAL_NAMESPACE,
    });
  });
  after(async () => {
    await raw?.connection.close();
    await h.close();
  });

  it('Postgres rows hold no plaintext message text or phone number', async () => {
    const dump = await dumpDatabase(h.databaseUrl);
    assert.ok(dump.messages.length > 0 && dump.contacts.length > 0);
    assert.ok(dump.knowledge_entries.includes(ANSWER), 'the dump reads plaintext where there is some (tenant knowledge)');
    for (const [table, rows] of Object.entries(dump)) {
      for (const secret of [phone, phone.slice(1), text, '7 Birch Lane'])
        assert.ok(!rows.includes(secret), `${table} holds "${secret}" in plaintext`);
      // Tenant knowledge (entries and their search chunks) is business content, stored searchable by design.
      if (!table.startsWith('knowledge_')) assert.ok(!rows.includes(ANSWER), `${table} holds the reply in plaintext`);
    }
  });

  it('raw Temporal history (no codec) holds no plaintext; the codec endpoint decodes it for operators', async () => {
    const history = await raw.workflowService.getWorkflowExecutionHistory({
      namespace: h.config.TEMPORAL_NAMESPACE,
      execution: { workflowId },
    });
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(history.history!).finish());
    assert.ok(bytes.length > 500, 'a real history');
    const asText = bytes.toString('latin1');
    for (const secret of [phone, phone.slice(1), '7 Birch Lane', ANSWER]) assert.ok(!asText.includes(secret), `history holds "${secret}"`);
    assert.ok(asText.includes('binary/encrypted'), 'payloads are marked encrypted');

    // Positive control: the signal's payload decodes, through the endpoint, to the message.
    const signal = history.history!.events!.find((e) => e.workflowExecutionSignaledEventAttributes)!;
    const payload = signal.workflowExecutionSignaledEventAttributes!.input!.payloads![0];
    const b64 = (u: Uint8Array | null | undefined) => Buffer.from(u ?? new Uint8Array()).toString('base64');
    const body = {
      payloads: [
        { metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(payload.data) },
      ],
    };
    const decoded = await h.request('POST', '/codec/decode', { key: TEST_ADMIN_KEY, body, headers: { 'x-namespace': 'default' } });
    assert.equal(decoded.status, 200);
    assert.ok(Buffer.from(decoded.body.payloads[0].data, 'base64').toString('utf8').includes('7 Birch Lane'));
  });

  it('logs of a full conversation hold no message text, phone number or key', async () => {
    await h.request('GET', `/routes/tenants/${t.id}/sandbox/messages?to=${encodeURIComponent(phone)}`, { key: t.key });
    const logs = h.logs.text();
    assert.ok(logs.includes('/webhook/inbound'), 'requests were logged');
    for (const secret of [phone, phone.slice(1), encodeURIComponent(phone), text, '7 Birch Lane', ANSWER, t.key, newKey, TEST_ADMIN_KEY]) {
      assert.ok(!logs.includes(secret), `logs contain "${secret.slice(0, 12)}…"`);
    }
  });

  it('consent is recorded with time and source, and exported', async () => {
    const optIn = await h.request('PUT', `/routes/tenants/${t.id}/contacts/${contactId}/consent`, {
      key: t.key,
      body: { opted_in: true, source: 'web-form' },
    });
    assert.equal(optIn.status, 200);
    const optOut = await h.request('PUT', `/routes/tenants/${t.id}/contacts/${contactId}/consent`, {
      key: t.key,
      body: { opted_in: false, source: 'support-call' },
    });
    assert.equal(optOut.body.opted_in, false);
    const exp = await h.request('GET', `/routes/tenants/${t.id}/contacts/${contactId}/export`, { key: t.key });
    assert.equal(exp.body.contact.opted_in, false, 'the revocation applies at once');
    assert.equal(exp.body.contact.consent_source, 'support-call');
    assert.deepEqual(
      exp.body.consent_history.map((e: any) => [e.opted_in, e.source]),
      [
        [true, 'web-form'],
        [false, 'support-call'],
      ],
    );
  });

  it('export returns everything held; erasure removes it and the workflow history; export then 404', async () => {
    // A legacy n8n job that carries the number (the seed's payload shape).
    await h.runtime.pool.query(`INSERT INTO jobs (payload, status, tenant_id) VALUES ($1, 'completed', $2)`, [
      JSON.stringify({ from: phone, tenant_id: t.id, conversation_id: conversationId }),
      t.id,
    ]);
    const exp = await h.request('GET', `/routes/tenants/${t.id}/contacts/${contactId}/export`, { key: t.key });
    assert.equal(exp.status, 200);
    assert.equal(exp.body.contact.phone, phone);
    assert.deepEqual(
      exp.body.conversations[0].messages.map((m: any) => m.text),
      [text, ANSWER],
    );
    assert.equal(exp.body.sandbox_messages.length, 1);
    assert.equal(exp.body.jobs.length, 1);

    const erased = await h.request('DELETE', `/routes/tenants/${t.id}/contacts/${contactId}`, { key: t.key });
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    assert.deepEqual(erased.body.erased, {
      contacts: 1,
      conversations: 1,
      messages: 2,
      message_media: 0,
      sandbox_messages: 1,
      jobs: 1,
      consent_events: 2,
      campaign_sends: 0,
      delivery_events: 0,
      remote_lookups: 0,
      data_access_logs: 0,
      ai_usage: 0,
      ai_events: 0,
      // message.received, message.sent, contact.opted_out and contact.opted_in
      webhook_events: 4,
      conversation_workflows: 1,
      lookup_workflows: 0,
      media_workflows: 0,
      workflows: 1,
    });
    assert.ok(Date.parse(erased.body.at) > 0);

    assert.equal((await h.request('GET', `/routes/tenants/${t.id}/contacts/${contactId}/export`, { key: t.key })).status, 404);
    assert.equal((await h.request('GET', `/routes/tenants/${t.id}/conversations/${conversationId}`, { key: t.key })).status, 404);
    assert.equal((await h.request('DELETE', `/routes/tenants/${t.id}/contacts/${contactId}`, { key: t.key })).status, 404);
    assert.deepEqual(await h.sandbox(t.id, t.key, phone), []);
    const { rows } = await h.runtime.pool.query(
      `SELECT (SELECT count(*) FROM contacts WHERE id = $1)::int + (SELECT count(*) FROM messages WHERE conversation_id = $2)::int
            + (SELECT count(*) FROM jobs WHERE tenant_id = $3)::int + (SELECT count(*) FROM outbox WHERE conversation_id = $2)::int AS n`,
      [contactId, conversationId, t.id],
    );
    assert.equal(rows[0].n, 0);
    const receipt = await h.runtime.pool.query(`SELECT erased::text AS e FROM erasures WHERE contact_id = $1`, [contactId]);
    assert.equal(receipt.rowCount, 1);
    assert.ok(!receipt.rows[0].e.includes(phone.slice(1)));

    // Temporal deletes a history asynchronously; soon it is gone.
    await waitFor(
      async () => {
        try {
          await raw.workflowService.getWorkflowExecutionHistory({ namespace: h.config.TEMPORAL_NAMESPACE, execution: { workflowId } });
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 5;
        }
      },
      { timeoutMs: 90_000, intervalMs: 250, what: 'the workflow history to be deleted' },
    );
  });

  it('a Temporal outage fails the erasure before anything is erased; a retry completes it', async () => {
    const who = uniquePhone();
    const res = await h.inbound(t.key, { from: who, message: 'opening hours?', tenant_id: t.id, timestamp: new Date().toISOString() });
    await waitFor(async () => (await h.sandbox(t.id, t.key, who)).length > 0, { timeoutMs: 30_000 });
    const conv = await h.request('GET', `/routes/tenants/${t.id}/conversations/${res.body.conversation_id}`, { key: t.key });
    // No retries: the outage is certain, waiting it out only slows the test.
    const connection = Connection.lazy({
      address: `127.0.0.1:${await freePort()}`,
      interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 1 }))],
    });
    const dead = new Client({ connection, namespace: 'default' });
    await assert.rejects(eraseContact({ db: h.runtime.db, keyring: h.runtime.keyring, temporal: dead }, t.id, conv.body.contact_id));
    await dead.connection.close();
    const exp = await h.request('GET', `/routes/tenants/${t.id}/contacts/${conv.body.contact_id}/export`, { key: t.key });
    assert.equal(exp.status, 200, 'nothing was erased');
    const erased = await h.request('DELETE', `/routes/tenants/${t.id}/contacts/${conv.body.contact_id}`, { key: t.key });
    assert.equal(erased.status, 200);
    assert.equal(erased.body.erased.workflows, 1);
  });

  it('erasure by phone number', async () => {
    const other = uniquePhone();
    const res = await h.inbound(t.key, { from: other, message: 'opening hours?', tenant_id: t.id, timestamp: new Date().toISOString() });
    await waitFor(async () => (await h.sandbox(t.id, t.key, other)).length > 0, { timeoutMs: 30_000 });
    const erased = await h.request('DELETE', `/routes/tenants/${t.id}/contacts?phone=${encodeURIComponent(other)}`, { key: t.key });
    assert.equal(erased.status, 200);
    assert.equal(erased.body.erased.messages, 2);
    assert.equal(erased.body.erased.workflows, 1);
    assert.equal((await h.request('GET', `/routes/tenants/${t.id}/conversations/${res.body.conversation_id}`, { key: t.key })).status, 404);
    assert.equal(
      (await h.request('DELETE', `/routes/tenants/${t.id}/contacts?phone=${encodeURIComponent(other)}`, { key: t.key })).status,
      404,
    );
    assert.equal((await h.request('DELETE', `/routes/tenants/${t.id}/contacts?phone=12345`, { key: t.key })).status, 400);
  });
});
