import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { messages } from '../core/db/schema.js';
import { hashStoredProviderIds } from '../core/messaging/provider-ids.js';
import { mediaWorkflowId } from '../core/platform/ids.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeOpenAi } from './helpers/fake-openai.js';
import { FakeProvider } from './helpers/fake-providers.js';
import { createPgCrm, type Crm } from './helpers/tenant-crm.js';
import { metaPayload, metaStatus, metaText, postMeta, wamid } from './helpers/webhooks.js';

const { temporal } = proto;
const META_SECRET = 'erasure-app-secret';
const NEVER = '0 0 1 1 *';

/**
 * Every column of every table that can hold text or an id (text, varchar, json, jsonb, arrays,
 * bytea, uuid), searched for each needle: a scan of the raw database, not of what the API shows.
 */
async function scanDatabase(h: Harness, needles: string[]): Promise<string[]> {
  const { rows: columns } = await h.runtime.pool.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND c.data_type IN ('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'bytea', 'tsvector', 'uuid')`,
  );
  assert.ok(columns.length > 50, 'the scan covers the schema');
  const found: string[] = [];
  for (const { table_name: table, column_name: column, data_type: type } of columns) {
    for (const needle of needles) {
      const match =
        type === 'bytea' ? `position(convert_to($1, 'UTF8') in "${column}") > 0` : `position(lower($1) in lower("${column}"::text)) > 0`;
      const { rows } = await h.runtime.pool.query(`SELECT count(*)::int AS n FROM "${table}" WHERE ${match}`, [needle]);
      if (rows[0].n > 0) found.push(`${table}.${column} holds "${needle}"`);
    }
  }
  return found;
}

describe('erasure is complete: every table and every workflow history', () => {
  let h: Harness;
  let t: { id: string; key: string };
  let raw: Client;
  let crm: Crm;
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  const openai = new FakeOpenAi();
  const pnid = `10${randomBytes(4).readUInt32BE()}`;
  const marker = randomBytes(4).toString('hex');
  const phone = uniquePhone();
  const digits = phone.slice(1);
  const name = `Zelda Quartermaine ${marker}`;
  const bystander = uniquePhone();
  const texts = {
    lookup: `when is my next appointment? ref ${marker}`,
    caption: `photo of my broken kettle ${marker}`,
    campaign: `your week went well ${marker}`,
  };
  const mediaId = `media${marker}`;
  const ids = { contact: '', conversation: '', conversationWorkflow: '', media: '', lookupWorkflows: [] as string[] };
  const wamids = { reply: '', campaign: '', inboundText: wamid(), inboundImage: wamid() };

  const meta200 = async (payload: unknown) => {
    const res = await postMeta(h.baseUrl, payload, META_SECRET);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const sendsTo = (p: string) => meta.sends().filter((r) => r.body.to === p.slice(1));

  before(async () => {
    await Promise.all([meta.start(), openai.start()]);
    crm = await createPgCrm({
      orders: [],
      appointments: [{ customer_phone: phone, starts_at: '2025-09-12 10:00', with_whom: 'Dr. Ana' }],
    });
    h = await createHarness();
    t = await h.createTenant(undefined, { fallback_message: 'A human will get back to you.' });
    raw = new Client({
      connection: await Connection.connect({ address: h.config.TEMPORAL_ADDRESS! }),
      namespace: h.config.TEMPORAL_NAMESPACE,
    });
    const channel = await h.request('POST', `/routes/tenants/${t.id}/channels`, {
      key: t.key,
      body: {
        provider: 'meta',
        credentials: { phone_number_id: pnid, access_token: 'meta-token', app_secret: META_SECRET, verify_token: `v-${marker}` },
        api_base_url: meta.url,
      },
    });
    assert.equal(channel.status, 201, JSON.stringify(channel.body));
    const sources = await h.request('PUT', `/routes/tenants/${t.id}/data-sources`, {
      key: t.key,
      body: {
        data_sources: [
          {
            id: 'crm',
            name: 'CRM',
            type: 'postgresql',
            connection: { ...crm.connection, password: crm.connection.password ?? 'pg-secret-password' },
            queries: {
              next_appointment: 'SELECT starts_at, with_whom FROM appointments WHERE customer_phone = $1 ORDER BY starts_at LIMIT 1',
            },
          },
        ],
      },
    });
    assert.equal(sources.status, 200, JSON.stringify(sources.body));
    const intents = await h.request('PUT', `/routes/tenants/${t.id}/intents`, {
      key: t.key,
      body: {
        intents: [
          {
            id: 'appointment',
            patterns: ['next appointment'],
            data_source: 'crm',
            query: 'next_appointment',
            params: ['customer_phone'],
            reply_template: 'Your next appointment is with {{with_whom}}',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    const ai = await h.request('PUT', `/routes/tenants/${t.id}/ai`, {
      key: t.key,
      body: { base_url: openai.baseUrl, api_key: 'sk-test', chat_model: 'test-chat', embedding_model: 'test-embed' },
    });
    assert.equal(ai.status, 200, JSON.stringify(ai.body));
    const contacts = await h.request('PUT', `/routes/tenants/${t.id}/contacts`, {
      key: t.key,
      body: {
        contacts: [
          { phone, name, tags: [`erase-${marker}`], attributes: { city: `Hyrule ${marker}` }, opted_in: true, consent_source: 'web_form' },
          { phone: bystander, name: 'Bystander Bo', tags: [`erase-${marker}`], opted_in: true },
        ],
      },
    });
    assert.equal(contacts.status, 200, JSON.stringify(contacts.body));
  });
  after(async () => {
    await raw?.connection.close();
    await h?.close();
    await crm?.drop();
    await Promise.all([meta.close(), openai.close()]);
  });

  it('a contact with a conversation, lookups, media, a campaign send and status callbacks leaves nothing behind', async () => {
    // The conversation: a lookup turn (customer_phone fills the query), then an image with a caption (an AI turn).
    await meta200(metaPayload(pnid, { messages: [metaText(phone, texts.lookup, wamids.inboundText)] }));
    const lookupReply = await waitFor(async () => sendsTo(phone)[0], { timeoutMs: 30_000, what: 'the lookup reply' });
    assert.equal(lookupReply.body.text.body, 'Your next appointment is with Dr. Ana');
    wamids.reply = meta.sentId((r) => r === lookupReply)!;
    await meta200(
      metaPayload(pnid, {
        messages: [
          {
            from: digits,
            id: wamids.inboundImage,
            timestamp: String(Math.floor(Date.now() / 1000)),
            type: 'image',
            image: { id: mediaId, mime_type: 'image/jpeg', sha256: 'abc', caption: texts.caption },
          },
        ],
      }),
    );
    await waitFor(async () => sendsTo(phone).length >= 2, { timeoutMs: 30_000, what: 'the reply to the image' });
    const media = await waitFor(
      async () => (await h.runtime.pool.query(`SELECT id, status FROM message_media WHERE tenant_id = $1`, [t.id])).rows[0],
      { what: 'the media row' },
    );
    ids.media = mediaWorkflowId(t.id, media.id);
    await waitFor(async () => (await raw.workflow.getHandle(ids.media).describe()).status.name === 'COMPLETED', {
      timeoutMs: 30_000,
      what: 'the media download',
    });

    // Lookups outside the conversation: nl-query and the seed's data_lookup payload.
    const nl = await h.request('POST', '/routes/data/nl-query', {
      key: t.key,
      body: { tenant_id: t.id, question: 'next appointment please', customer_phone: phone },
    });
    assert.equal(nl.body.reply, 'Your next appointment is with Dr. Ana', JSON.stringify(nl.body));
    const job = await h.request('POST', '/routes/data/lookup', {
      key: t.key,
      body: {
        job_type: 'data_lookup',
        tenant_id: t.id,
        query: 'next_appointment',
        parameters: { customer_phone: phone },
        data_source: 'crm',
      },
    });
    assert.equal(job.body.ok, true, JSON.stringify(job.body));

    // A campaign run: the contact is inside the 24-hour window (free text), the bystander is not (skipped).
    const campaign = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns`, {
      key: t.key,
      body: {
        name: 'Weekly',
        cron: NEVER,
        timezone: 'UTC',
        audience: { tags: [`erase-${marker}`] },
        message: { template: `Hi {{name}}, ${texts.campaign}` },
      },
    });
    assert.equal(campaign.status, 201, JSON.stringify(campaign.body));
    const run = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns/${campaign.body.id}/trigger`, { key: t.key });
    assert.equal(run.status, 202, JSON.stringify(run.body));
    const finished = await waitFor(
      async () => {
        const runs = await h.request('GET', `/routes/tenants/${t.id}/pulse/campaigns/${campaign.body.id}/runs`, { key: t.key });
        const r = runs.body.runs.find((x: any) => x.run_id === run.body.run_id);
        return r?.status === 'completed' && r;
      },
      { timeoutMs: 60_000, what: 'the campaign run' },
    );
    assert.equal(finished.sent, 1, JSON.stringify(finished));
    const campaignSend = sendsTo(phone).find((r) => r.body.text?.body === `Hi ${name}, ${texts.campaign}`);
    assert.ok(campaignSend, 'the personalised campaign message went out');
    wamids.campaign = meta.sentId((r) => r === campaignSend)!;

    // Status callbacks for both outbound messages, matched through the stored hash.
    await meta200(
      metaPayload(pnid, {
        statuses: [
          metaStatus(wamids.reply, 'delivered'),
          metaStatus(wamids.reply, 'read'),
          metaStatus(wamids.campaign, 'delivered'),
          metaStatus(wamids.campaign, 'read'),
        ],
      }),
    );

    const keyring = h.runtime.keyring;
    const contact = await h.request('GET', `/routes/tenants/${t.id}/contacts?phone=${encodeURIComponent(phone)}`, { key: t.key });
    ids.contact = contact.body.contacts[0].id;
    const consent = await h.request('PUT', `/routes/tenants/${t.id}/contacts/${ids.contact}/consent`, {
      key: t.key,
      body: { opted_in: true, source: 'whatsapp:START' },
    });
    assert.equal(consent.status, 200, JSON.stringify(consent.body));
    const conv = (await h.runtime.pool.query('SELECT id, workflow_id FROM conversations WHERE contact_id = $1', [ids.contact])).rows[0];
    ids.conversation = conv.id;
    ids.conversationWorkflow = conv.workflow_id;
    const delivered = await h.runtime.pool.query(
      `SELECT delivery_status FROM messages WHERE conversation_id = $1 AND direction = 'outbound' AND provider_message_id = $2`,
      [ids.conversation, keyring.blindIndex(wamids.reply)],
    );
    assert.equal(delivered.rows[0]?.delivery_status, 'read', 'the status callback found the message by the hash');
    ids.lookupWorkflows = (
      await h.runtime.pool.query(
        `SELECT DISTINCT workflow_id FROM data_access_logs WHERE tenant_id = $1 AND customer_identifier = $2 AND workflow_id LIKE 'data/%'`,
        [t.id, keyring.blindIndex(phone)],
      )
    ).rows.map((r) => r.workflow_id);
    assert.equal(ids.lookupWorkflows.length, 2, 'nl-query and data_lookup each ran a lookup workflow');
    const usage = await h.runtime.pool.query('SELECT count(*)::int AS n FROM ai_usage WHERE conversation_id = $1', [ids.conversation]);
    assert.ok(usage.rows[0].n > 0, 'the AI turn counted its tokens against the conversation');

    // What must be gone: in clear (never stored so, but checked), and the forms that do get stored.
    // The campaign's template is the tenant's; the text personalised for the contact is theirs.
    const personalised = `Hi ${name}, ${texts.campaign}`;
    const clear = [phone, digits, name, 'Zelda Quartermaine', `Hyrule ${marker}`, texts.lookup, texts.caption, personalised, mediaId];
    const providerIds = [wamids.reply, wamids.campaign, wamids.inboundText, wamids.inboundImage];
    const stored = [
      keyring.blindIndex(phone),
      ...providerIds.map((id) => keyring.blindIndex(id)),
      ids.conversation,
      ids.conversationWorkflow,
      ...ids.lookupWorkflows,
    ];
    // The scan finds what is there: the stored forms before erasure (positive control).
    const beforeErasure = await scanDatabase(h, [...clear, ...providerIds, ...stored, ids.media]);
    for (const needle of stored)
      assert.ok(
        beforeErasure.some((f) => f.endsWith(`"${needle}"`)),
        `the scan finds ${needle} before erasure`,
      );
    assert.deepEqual(
      beforeErasure.filter((f) => [...clear, ...providerIds].some((n) => f.endsWith(`"${n}"`))),
      [],
      'nothing in clear even before erasure (provider ids included)',
    );

    const erased = await h.request('DELETE', `/routes/tenants/${t.id}/contacts/${ids.contact}`, { key: t.key });
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    const r = erased.body.erased;
    assert.equal(r.contacts, 1);
    assert.equal(r.conversations, 1);
    assert.ok(r.messages >= 4, `messages ${r.messages}`);
    assert.equal(r.message_media, 1);
    assert.equal(r.campaign_sends, 1);
    assert.equal(r.delivery_events, 4);
    assert.ok(r.data_access_logs >= 3, `data_access_logs ${r.data_access_logs}`);
    assert.ok(r.ai_usage >= 1, `ai_usage ${r.ai_usage}`);
    assert.equal(r.consent_events, 1);
    assert.ok(r.conversation_workflows >= 1);
    assert.equal(r.lookup_workflows, 2);
    assert.equal(r.media_workflows, 1);
    assert.equal(r.workflows, r.conversation_workflows + r.lookup_workflows + r.media_workflows);

    // The raw database: nothing of theirs. The contact id stays only in the erasure receipt.
    assert.deepEqual(await scanDatabase(h, [...clear, ...providerIds, ...stored, ids.media]), []);
    assert.deepEqual(await scanDatabase(h, [ids.contact]), [`erasures.contact_id holds "${ids.contact}"`]);
    // Targeted: the bystander and the tenant's metrics stay.
    assert.ok((await scanDatabase(h, [keyring.blindIndex(bystander)])).length > 0, "the bystander's contact row stays");
    const logs = await h.runtime.pool.query('SELECT count(*)::int AS n FROM data_access_logs WHERE tenant_id = $1', [t.id]);
    assert.ok(logs.rows[0].n >= 3, 'the lookup audit rows stay, anonymised');

    // Temporal: the workflows naming the contact are gone…
    for (const workflowId of [ids.conversationWorkflow, ids.media, ...ids.lookupWorkflows]) {
      await waitFor(
        async () => {
          const left = [];
          for await (const e of raw.workflow.list({ query: `WorkflowId = '${workflowId}'` })) left.push(e);
          const history = await raw.workflowService
            .getWorkflowExecutionHistory({ namespace: h.config.TEMPORAL_NAMESPACE, execution: { workflowId } })
            .then(
              () => true,
              () => false,
            );
          return left.length === 0 && !history;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: `${workflowId} deleted` },
      );
    }
    // …and the history of every workflow left on this task queue (the campaign run among them) holds nothing of theirs.
    const left: string[] = [];
    const histories: string[] = [];
    for await (const e of raw.workflow.list({ query: `TaskQueue = '${h.config.TEMPORAL_TASK_QUEUE}'` })) {
      left.push(e.workflowId);
      let nextPageToken: Uint8Array | undefined;
      do {
        const page = await raw.workflowService.getWorkflowExecutionHistory({
          namespace: h.config.TEMPORAL_NAMESPACE,
          execution: { workflowId: e.workflowId, runId: e.runId },
          nextPageToken,
        });
        histories.push(Buffer.from(temporal.api.history.v1.History.encode(page.history!).finish()).toString('latin1'));
        nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      } while (nextPageToken);
    }
    assert.ok(left.includes(run.body.run_id), 'the campaign run workflow is among those scanned');
    assert.ok(!left.some((id) => id.includes(ids.contact)), 'no workflow id names the contact');
    const all = histories.join('\n');
    for (const needle of [...clear, ...providerIds, ...stored, ids.media])
      assert.ok(!all.includes(needle), `a workflow history holds "${needle}"`);
  });

  it('provider ids stored in clear before migration 1400 are still matched, then converted to their hash', async () => {
    const from = uniquePhone();
    await meta200(metaPayload(pnid, { messages: [metaText(from, `legacy ${marker}`)] }));
    const conv = await waitFor(
      async () =>
        (
          await h.runtime.pool.query('SELECT c.id FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE k.phone_hash = $1', [
            h.runtime.keyring.blindIndex(from),
          ])
        ).rows[0],
    );
    // A row as the previous release wrote it: the wamid in clear, and a status event kept by it.
    const legacy = `wamid.HBgL${randomBytes(12).toString('hex')}`;
    const { rows } = await h.runtime.pool.query(
      `INSERT INTO messages (tenant_id, conversation_id, direction, dedupe_key, body_enc, status, provider_message_id, sent_at)
       VALUES ($1, $2, 'outbound', $3, $4, 'sent', $5, now()) RETURNING id`,
      [t.id, conv.id, `legacy:${marker}`, h.runtime.keyring.encrypt('an old reply', { tenantId: t.id, column: messages.bodyEnc }), legacy],
    );
    await h.runtime.pool.query(
      `INSERT INTO delivery_events (tenant_id, provider_message_id, status, occurred_at) VALUES ($1, $2, 'delivered', now())`,
      [t.id, legacy],
    );
    const state = async () =>
      (await h.runtime.pool.query('SELECT provider_message_id, delivery_status FROM messages WHERE id = $1', [rows[0].id])).rows[0];

    // During the rollout a status callback still finds the clear row and folds in both events.
    await meta200(metaPayload(pnid, { statuses: [metaStatus(legacy, 'read')] }));
    assert.deepEqual(await state(), { provider_message_id: legacy, delivery_status: 'read' });

    const converted = await hashStoredProviderIds(h.runtime.pool, h.runtime.keyring, 1);
    assert.equal(converted.messages, 1);
    assert.equal(converted.delivery_events, 1, 'the clear event moved onto the hash (the read one was stored hashed)');
    const hash = h.runtime.keyring.blindIndex(legacy);
    assert.equal((await state()).provider_message_id, hash);
    const events = await h.runtime.pool.query(
      'SELECT provider_message_id, status FROM delivery_events WHERE provider_message_id = ANY($1)',
      [[legacy, hash]],
    );
    assert.deepEqual(events.rows.map((e) => `${e.provider_message_id === hash ? 'hash' : 'clear'}:${e.status}`).sort(), [
      'hash:delivered',
      'hash:read',
    ]);
    // Idempotent: a second pass finds nothing to convert, and hashes are never hashed again.
    assert.deepEqual(await hashStoredProviderIds(h.runtime.pool, h.runtime.keyring), {
      messages: 0,
      campaign_sends: 0,
      delivery_events: 0,
    });
    // After the conversion, callbacks match by the hash.
    await meta200(metaPayload(pnid, { statuses: [metaStatus(legacy, 'failed', [{ code: 131047, title: 'Re-engagement message' }])] }));
    assert.equal((await state()).delivery_status, 'failed');
  });
});
