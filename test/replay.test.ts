import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { dataConverter } from '../core/temporal/client.js';
import { WORKFLOWS_PATH } from '../worker/create-worker.js';
import * as workflows from '../workflows/index.js';
import { FakeOpenAi } from './helpers/fake-openai.js';
import { FakeProvider, metaChannelBody } from './helpers/fake-providers.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';
import { fakeInventory } from './helpers/fake-sources.js';
import { createHarness, createTemporalClient, testKeyring, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { legacyTenant, simulatedN8n } from './helpers/n8n.js';
import { metaPayload, metaText, postMeta, wamid } from './helpers/webhooks.js';

/**
 * Replays recorded histories (test/histories/*.json, encrypted with the test key) of every
 * workflow type through the current workflow code, so a change that breaks determinism fails CI.
 * `RECORD_HISTORIES=1 npm test -- test/replay.test.ts` records them anew (and overwrites the
 * files it names; the before-answer-turn-* histories come from the workflow before answerTurn
 * and are kept as they are).
 */
const HISTORIES = fileURLToPath(new URL('./histories/', import.meta.url));
const BROKEN = fileURLToPath(new URL('./fixtures/broken-workflows/index.ts', import.meta.url));

async function loadHistories() {
  const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (f) => {
      const history = historyFromJSON(JSON.parse(await readFile(path.join(HISTORIES, f), 'utf8')));
      const type = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '';
      return { workflowId: f, type, history };
    }),
  );
}

async function replay(workflowsPath: string, only?: string) {
  const options = { workflowsPath, dataConverter: dataConverter(testKeyring()) };
  const histories = (await loadHistories()).filter((h) => !only || h.type === only);
  const results = [];
  for await (const result of Worker.runReplayHistories(options, histories)) results.push(result);
  return results;
}

describe('workflow replay', { skip: process.env.RECORD_HISTORIES ? 'recording' : false }, () => {
  it('every recorded history replays on the current workflow code', async () => {
    const results = await replay(WORKFLOWS_PATH);
    assert.ok(results.length >= 3, 'histories are checked in');
    for (const r of results) assert.equal(r.error, undefined, `${r.workflowId}: ${r.error}`);
  });

  it('every workflow type the worker registers has a recorded history', async () => {
    const recorded = new Set((await loadHistories()).map((h) => h.type));
    const missing = Object.keys(workflows).filter((type) => !recorded.has(type));
    assert.deepEqual(missing, [], `record histories for ${missing.join(', ')} (RECORD_HISTORIES=1)`);
  });

  it('a deliberately non-deterministic workflow fails replay', async () => {
    const results = await replay(BROKEN, 'conversationWorkflow');
    assert.ok(results.length >= 3);
    for (const r of results) assert.ok(r.error, `${r.workflowId} should not replay on the broken workflow`);
    assert.match(String(results[0].error?.name ?? results[0].error), /Determinism/);
  });
});

describe('record histories', { skip: process.env.RECORD_HISTORIES ? false : 'set RECORD_HISTORIES=1 to record' }, () => {
  let h: Harness;
  let client: Client;
  const meta = new FakeProvider('meta', { token: 'meta-token' });
  const openai = new FakeOpenAi();
  const inventory = fakeInventory('inv-key');
  before(async () => {
    await Promise.all([meta.start(), openai.start(), inventory.start()]);
    h = await createHarness({ env: { CONVERSATION_WINDOW_S: '3' } });
    client = await createTemporalClient({ address: h.config.TEMPORAL_ADDRESS!, namespace: 'default', keyring: testKeyring() });
  });
  after(async () => {
    await client.connection.close();
    await h.close();
    await Promise.all([meta.close(), openai.close(), inventory.stop()]);
  });

  /** Waits for the workflow to close and writes its history (the proto JSON historyFromJSON reads). */
  async function save(name: string, workflowId: string): Promise<void> {
    const handle = client.workflow.getHandle(workflowId);
    await waitFor(async () => (await handle.describe()).status.name === 'COMPLETED', { timeoutMs: 60_000, what: `${name} to close` });
    await writeFile(path.join(HISTORIES, `${name}.json`), historyToJSON(await handle.fetchHistory()));
  }

  /** The one closed workflow of a type this harness's task queue ran, saved under the type's name. */
  async function saveType(type: string): Promise<void> {
    const id = await waitFor(
      async () => {
        for await (const w of client.workflow.list({
          query: `WorkflowType = '${type}' AND TaskQueue = '${h.config.TEMPORAL_TASK_QUEUE}'`,
        })) {
          if (w.status.name === 'COMPLETED') return w.workflowId;
        }
        return undefined;
      },
      { timeoutMs: 60_000, what: `a completed ${type}` },
    );
    await save(type, id);
  }

  const workflowIdOf = async (t: { id: string; key: string }, conversationId: string) =>
    (await h.request('GET', `/routes/tenants/${t.id}/conversations/${conversationId}`, { key: t.key })).body.workflow_id as string;

  it('records the sandbox knowledge path: a single turn, a debounced burst and a conversation that closes', async () => {
    const tenant = await h.createTenant('replay-tenant');
    await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
      key: tenant.key,
      body: { entries: [{ title: 'Hours', content: 'We are open 9 to 5.' }] },
    });
    const conversation = async (name: string, texts: string[], gapMs: number) => {
      const to = uniquePhone();
      let conversationId = '';
      for (const message of texts) {
        const r = await h.inbound(tenant.key, { from: to, message, tenant_id: tenant.id, timestamp: new Date().toISOString() });
        conversationId = r.body.conversation_id;
        await delay(gapMs);
      }
      await save(name, await workflowIdOf(tenant, conversationId));
    };
    await conversation('single-turn', ['when are you open?'], 300);
    await conversation('two-turns', ['hello', 'when are you open?'], 800);
    await h.request('PATCH', `/routes/tenants/${tenant.id}/settings`, { key: tenant.key, body: { debounce_ms: 500 } });
    await conversation('debounced-burst', ['hi', 'quick question', 'when are you open?'], 100);
    // A turn whose reply PostgreSQL keeps refusing is answered with the fallback (failTurn).
    const owner = new pg.Client({ connectionString: h.databaseUrl });
    await owner.connect();
    await owner.query(`
      CREATE FUNCTION refuse_knowledge_reply() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.reply_source = 'knowledge' THEN RAISE EXCEPTION 'stack depth limit exceeded' USING ERRCODE = '54001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_knowledge_reply BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_knowledge_reply();`);
    await conversation('failed-turn', ['when are you open?'], 300);
    await owner.query('DROP TRIGGER refuse_knowledge_reply ON messages');
    await owner.end();
  });

  it('records a reply delivered through a real provider (Meta) and a media download', async () => {
    const tenant = await h.createTenant();
    const body = metaChannelBody(meta.url);
    const ch = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, { key: tenant.key, body });
    assert.equal(ch.status, 201, JSON.stringify(ch.body));
    const from = uniquePhone();
    const image = {
      from: uniquePhone().slice(1),
      id: wamid(),
      timestamp: String(Math.floor(Date.now() / 1000)),
      type: 'image',
      image: { id: 'media-replay', mime_type: 'image/jpeg', sha256: 'abc', caption: 'my receipt' },
    };
    const res = await postMeta(
      h.baseUrl,
      metaPayload(body.credentials.phone_number_id, { messages: [metaText(from, 'hello'), image] }),
      's',
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await waitFor(async () => meta.sends().some((r) => `+${r.body.to}` === from), {
      timeoutMs: 30_000,
      what: 'the reply at the fake Meta',
    });
    const { rows } = await h.runtime.pool.query(
      `SELECT c.workflow_id FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE c.tenant_id = $1 AND k.phone_hash = $2`,
      [tenant.id, h.runtime.keyring.blindIndex(from)],
    );
    await save('real-provider-delivery', rows[0].workflow_id);
    await saveType('mediaDownloadWorkflow');
  });

  it('records a legacy n8n turn answered through /messages/send', async () => {
    const tenant = await legacyTenant(h, 'A person will answer soon.', 30);
    const n8n = simulatedN8n(h.baseUrl);
    const from = uniquePhone();
    const r = await h.inbound(tenant.key, {
      from,
      message: 'where is my order?',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    const job = await n8n.pollJob(tenant.key);
    assert.ok(job);
    const sent = await n8n.send(tenant.key, { to: from, message: 'It shipped.', tenant_id: tenant.id, job_id: job.job_id });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    await save('legacy-n8n-answer', await workflowIdOf(tenant, r.body.conversation_id));
  });

  it('records an AI reply (an OpenAI-compatible endpoint)', async () => {
    const tenant = await h.createTenant();
    await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
      key: tenant.key,
      body: { entries: [{ title: 'Delivery', content: 'We deliver within 3 days.' }] },
    });
    const put = await h.request('PUT', `/routes/tenants/${tenant.id}/ai`, {
      key: tenant.key,
      body: {
        base_url: openai.baseUrl,
        api_key: 'sk-replay',
        chat_model: 'test-chat',
        embedding_model: 'test-embed',
        confidence_threshold: 0.5,
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const reply = await h.ask(tenant, 'do you deliver?');
    assert.ok(reply.text);
    const { rows } = await h.runtime.pool.query(
      `SELECT c.workflow_id FROM conversations c JOIN contacts k ON k.id = c.contact_id WHERE c.tenant_id = $1 AND k.phone_hash = $2`,
      [tenant.id, h.runtime.keyring.blindIndex(reply.from)],
    );
    await save('ai-reply', rows[0].workflow_id);
    // Setting the AI profile embeds the knowledge base.
    await saveType('knowledgeIngestWorkflow');
  });

  it('records a data lookup and a data source test', async () => {
    const tenant = await h.createTenant();
    const put = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
      key: tenant.key,
      body: {
        data_sources: [
          {
            id: 'inventory_api',
            name: 'Inventory System',
            type: 'rest_api',
            connection: { base_url: `${inventory.url}/api`, api_key: 'inv-key', headers: { Authorization: 'Bearer {api_key}' } },
            endpoints: { check_stock: '/products/{sku}/stock' },
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
            id: 'stock',
            patterns: ['is (?<sku>SKU-\\d+) in stock'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: '{{name}}: {{quantity}} in stock',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    const lookup = await h.request('POST', '/routes/data/nl-query', {
      key: tenant.key,
      body: { tenant_id: tenant.id, question: 'is SKU-789 in stock?' },
    });
    assert.equal(lookup.body.matched, true, JSON.stringify(lookup.body));
    const test = await h.request('POST', `/routes/tenants/${tenant.id}/data-sources/inventory_api/test`, { key: tenant.key });
    assert.equal(test.status, 200, JSON.stringify(test.body));
    await saveType('dataLookupWorkflow');
    await saveType('dataSourceTestWorkflow');
  });

  it('records an event delivery to a webhook endpoint', async () => {
    const rx = new WebhookReceiver();
    const url = await rx.start();
    try {
      const tenant = await h.createTenant();
      await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
        key: tenant.key,
        body: { entries: [{ title: 'Hours', content: 'We are open 9 to 5.' }] },
      });
      const endpoint = await h.request('POST', `/routes/tenants/${tenant.id}/webhook-endpoints`, {
        key: tenant.key,
        body: { url, events: ['message.received', 'message.sent'] },
      });
      assert.equal(endpoint.status, 201, JSON.stringify(endpoint.body));
      await h.ask(tenant, 'when are you open?');
      await waitFor(async () => rx.requests.filter((r) => r.status === 200).length === 2, { what: 'both events at the receiver' });
      // The workflow idles for minutes before it ends: its history is taken once both attempts are recorded.
      const { EventType } = proto.temporal.api.enums.v1;
      const id = await waitFor(
        async () => {
          for await (const w of client.workflow.list({
            query: `WorkflowType = 'eventDeliveryWorkflow' AND TaskQueue = '${h.config.TEMPORAL_TASK_QUEUE}'`,
          })) {
            const { events } = await client.workflow.getHandle(w.workflowId).fetchHistory();
            const completed = events!.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED).length;
            // Both attempts done and the idle timer started: the workflow waits for the next event.
            if (completed === 2 && events!.at(-1)!.eventType === EventType.EVENT_TYPE_TIMER_STARTED) return w.workflowId;
          }
          return undefined;
        },
        { timeoutMs: 60_000, what: 'an event delivery history with both attempts' },
      );
      const handle = client.workflow.getHandle(id);
      await writeFile(path.join(HISTORIES, 'eventDeliveryWorkflow.json'), historyToJSON(await handle.fetchHistory()));
      await handle.terminate('recorded');
    } finally {
      await rx.close();
    }
  });

  it('records a campaign run and a retention purge', async () => {
    const tenant = await h.createTenant();
    const phone = uniquePhone();
    const contacts = await h.request('PUT', `/routes/tenants/${tenant.id}/contacts`, {
      key: tenant.key,
      body: { contacts: [{ phone, name: 'Ana', tags: ['vip'], opted_in: true }] },
    });
    assert.equal(contacts.status, 200, JSON.stringify(contacts.body));
    const campaign = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns`, {
      key: tenant.key,
      body: {
        name: 'Weekly pulse',
        cron: '0 0 1 1 *',
        timezone: 'UTC',
        message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      },
    });
    assert.equal(campaign.status, 201, JSON.stringify(campaign.body));
    const run = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${campaign.body.id}/trigger`, { key: tenant.key });
    assert.equal(run.status, 202, JSON.stringify(run.body));
    await saveType('pulseCampaignWorkflow');
    await client.workflow.execute(workflows.retentionPurgeWorkflow, {
      taskQueue: h.config.TEMPORAL_TASK_QUEUE,
      workflowId: `retention-replay-${Date.now()}`,
    });
    await saveType('retentionPurgeWorkflow');
  });
});
