import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from '@temporalio/worker';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { dataConverter } from '../core/temporal/client.js';
import { WORKFLOWS_PATH } from '../worker/create-worker.js';
import { createHarness, createTemporalClient, testKeyring, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

/**
 * Replays recorded conversation histories (test/histories/*.json, encrypted with the test key)
 * through the current workflow code, so a change that breaks determinism fails CI.
 * `RECORD_HISTORIES=1 npm test -- test/replay.test.ts` records them anew.
 */
const HISTORIES = fileURLToPath(new URL('./histories/', import.meta.url));
const BROKEN = fileURLToPath(new URL('./fixtures/broken-workflows/index.ts', import.meta.url));

async function loadHistories() {
  const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (f) => ({ workflowId: f, history: historyFromJSON(JSON.parse(await readFile(path.join(HISTORIES, f), 'utf8'))) })),
  );
}

async function replay(workflowsPath: string) {
  const options = { workflowsPath, dataConverter: dataConverter(testKeyring()) };
  const results = [];
  for await (const result of Worker.runReplayHistories(options, await loadHistories())) results.push(result);
  return results;
}

describe('workflow replay', { skip: process.env.RECORD_HISTORIES ? 'recording' : false }, () => {
  it('every recorded history replays on the current workflow code', async () => {
    const results = await replay(WORKFLOWS_PATH);
    assert.ok(results.length >= 3, 'histories are checked in');
    for (const r of results) assert.equal(r.error, undefined, `${r.workflowId}: ${r.error}`);
  });

  it('a deliberately non-deterministic workflow fails replay', async () => {
    const results = await replay(BROKEN);
    assert.ok(results.length >= 3);
    for (const r of results) assert.ok(r.error, `${r.workflowId} should not replay on the broken workflow`);
    assert.match(String(results[0].error?.name ?? results[0].error), /Determinism/);
  });
});

describe('record histories', { skip: process.env.RECORD_HISTORIES ? false : 'set RECORD_HISTORIES=1 to record' }, () => {
  let h: Harness;
  before(async () => {
    h = await createHarness({ env: { CONVERSATION_WINDOW_S: '3' } });
  });
  after(() => h.close());

  it('records a single turn, a debounced burst, a failed turn and a conversation that closes', async () => {
    const client = await createTemporalClient({ address: h.config.TEMPORAL_ADDRESS!, namespace: 'default', keyring: testKeyring() });
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
      const conv = await h.request('GET', `/routes/tenants/${tenant.id}/conversations/${conversationId}`, { key: tenant.key });
      const handle = client.workflow.getHandle(conv.body.workflow_id);
      await waitFor(async () => (await handle.describe()).status.name === 'COMPLETED', { timeoutMs: 30_000, what: 'workflow to close' });
      // The CLI's proto JSON is the format historyFromJSON reads.
      const { stdout } = await promisify(execFile)(
        process.env.TEMPORAL_CLI!,
        ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', h.config.TEMPORAL_ADDRESS!, '--output', 'json'],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      await writeFile(path.join(HISTORIES, `${name}.json`), stdout);
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
    await client.connection.close();
  });
});
