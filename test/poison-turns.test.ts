import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { TURN_TEXT_LIMIT } from '../contracts/conversation.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeOpenAi, lastUserText } from './helpers/fake-openai.js';
import { killHard, spawnWorker } from './helpers/processes.js';

const BURST = 500;
const FALLBACK = 'Sorry, something went wrong on our side. A colleague will get back to you.';
const HOURS = 'We are open Monday to Friday, 9am to 5pm.';
/** What the failing query's error carries (message, detail, hint): it must never reach a log. */
const ERROR_MARKER = `ERRMARK${randomBytes(4).toString('hex')}`;

/**
 * Knowledge replies fail in PostgreSQL while `poison` holds a SQLSTATE: a trigger raises it, its
 * message, detail and hint echoing ERROR_MARKER, as PostgreSQL echoes a rejected value. The
 * fallback reply (reply_source 'fallback') still goes through.
 */
const POISON_SQL = `
  CREATE TABLE poison (sqlstate text NOT NULL);
  CREATE FUNCTION poison_reply() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE s text;
  BEGIN
    SELECT sqlstate INTO s FROM poison LIMIT 1;
    IF s IS NOT NULL AND NEW.direction = 'outbound' AND NEW.reply_source = 'knowledge' THEN
      RAISE EXCEPTION 'stack depth limit exceeded near "${ERROR_MARKER}"'
        USING ERRCODE = s, DETAIL = 'value: ${ERROR_MARKER}', HINT = '${ERROR_MARKER}';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER poison_reply BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison_reply();
  CREATE TABLE poison_inbound (sqlstate text NOT NULL);
  CREATE FUNCTION poison_inbound() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE s text;
  BEGIN
    SELECT sqlstate INTO s FROM poison_inbound LIMIT 1;
    IF s IS NOT NULL AND NEW.direction = 'inbound' THEN
      RAISE EXCEPTION 'value too long: "${ERROR_MARKER}"' USING ERRCODE = s, DETAIL = '${ERROR_MARKER}';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER poison_inbound BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison_inbound();`;

describe('no poison turns', () => {
  let h: Harness;
  let worker: ChildProcess;
  let owner: pg.Client;
  const fake = new FakeOpenAi();
  const workerLog: string[] = [];

  before(async () => {
    await fake.start();
    h = await createHarness({ worker: false });
    // A separate worker process, so everything it logs (pino on stdout, at info) can be read.
    worker = spawnWorker(h, { LOG_LEVEL: 'info' }, { stdout: 'pipe' });
    worker.stdout!.on('data', (chunk: Buffer) => workerLog.push(chunk.toString()));
    owner = new pg.Client({ connectionString: h.databaseUrl });
    await owner.connect();
    await owner.query(POISON_SQL);
  });
  after(async () => {
    await owner?.end();
    if (worker) await killHard(worker);
    await h?.close();
    await fake.close();
  });

  async function tenantWithKnowledge(extra: Record<string, unknown> = {}) {
    const tenant = await h.createTenant(undefined, { fallback_message: FALLBACK, ...extra });
    const put = await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
      key: tenant.key,
      body: { entries: [{ title: 'Opening hours', content: HOURS }] },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    return tenant;
  }

  const send = (tenant: { id: string; key: string }, from: string, message: string) =>
    h.inbound(tenant.key, { from, message, tenant_id: tenant.id, timestamp: new Date().toISOString() });

  async function repliesTo(tenant: { id: string; key: string }, from: string, id: string) {
    return waitFor(
      async () => {
        const replies = await h.sandbox(tenant.id, tenant.key, from);
        const reply = replies.find((m: { in_reply_to: string[] }) => m.in_reply_to.includes(id));
        return reply && replies;
      },
      { timeoutMs: 60_000, what: `the reply to ${id}` },
    );
  }

  it(`${BURST} messages of 4,000 characters from one customer at once are answered, each once, and so is the next`, async () => {
    fake.chat = () => ({ content: JSON.stringify({ answer: 'Thanks, we have read everything.', confidence: 0.9, sources: [] }) });
    const tenant = await tenantWithKnowledge();
    const ai = await h.request('PUT', `/routes/tenants/${tenant.id}/ai`, {
      key: tenant.key,
      body: { base_url: fake.baseUrl, api_key: 'sk-test', chat_model: 'test-chat', embedding_model: 'test-embed' },
    });
    assert.equal(ai.status, 200, JSON.stringify(ai.body));

    // The whole burst is accepted before the relay moves, as when it arrives at once.
    await h.api.relay.stop();
    const from = uniquePhone();
    const ids: string[] = [];
    for (let i = 0; i < BURST; i++) {
      const r = await send(tenant, from, `burst-${i}: `.padEnd(4000, 'my order has not arrived and nobody answers '));
      assert.equal(r.status, 202);
      ids.push(r.body.message_id);
    }
    h.api.relay.start();

    const answered = await waitFor(
      async () => {
        const replies = await h.sandbox(tenant.id, tenant.key, from);
        const all = replies.flatMap((m: { in_reply_to: string[] }) => m.in_reply_to);
        return all.length >= BURST && { replies, all };
      },
      { timeoutMs: 180_000, what: `replies covering all ${BURST} messages` },
    );
    assert.deepEqual(answered.all, ids, 'every message answered once, in order');
    assert.ok(answered.replies.length <= 50, `a bounded number of replies (${answered.replies.length})`);
    assert.ok(answered.replies.every((m: { text: string }) => m.text === 'Thanks, we have read everything.'));

    // Each turn asked the LLM about its newest text only, capped whatever the burst's size.
    const questions = fake.chatRequests().map((r) => lastUserText(r.body));
    assert.ok(questions.length >= answered.replies.length, `${questions.length} LLM calls for ${answered.replies.length} turns`);
    for (const q of questions) assert.ok(q.length <= TURN_TEXT_LIMIT + 1000, `an LLM question of ${q.length} characters`);
    assert.match(questions.at(-1)!, new RegExp(`burst-${BURST - 1}:`));
    assert.doesNotMatch(questions.at(-1)!, /burst-0:/);

    const next = await send(tenant, from, 'and when are you open?');
    assert.equal(next.status, 202);
    const after = await repliesTo(tenant, from, next.body.message_id);
    assert.deepEqual(after.at(-1).in_reply_to, [next.body.message_id]);
  });

  it('a turn whose query its input breaks is answered with the fallback and counted, once; the next turn is answered', async () => {
    const tenant = await tenantWithKnowledge();
    const from = uniquePhone();
    const secret = `CUSTOMERSECRET${randomBytes(4).toString('hex')}`;
    const before = await h.request('GET', '/');
    await owner.query(`INSERT INTO poison VALUES ('54001')`);
    try {
      const r = await send(tenant, from, `${secret} when are you open? opening hours`);
      assert.equal(r.status, 202);
      const replies = await repliesTo(tenant, from, r.body.message_id);
      assert.deepEqual(
        replies.map((m: { text: string }) => m.text),
        [FALLBACK],
      );
    } finally {
      await owner.query('DELETE FROM poison');
    }
    const health = await h.request('GET', '/');
    assert.equal(health.status, 200);
    assert.equal(health.body.turns.failed_24h, before.body.turns.failed_24h + 1);
    const rows = await owner.query(`SELECT failure_type, messages FROM failed_turns WHERE tenant_id = $1`, [tenant.id]);
    assert.deepEqual(rows.rows, [{ failure_type: 'DatabaseError', messages: 1 }]);

    const next = await send(tenant, from, 'when are you open?');
    const replies = await repliesTo(tenant, from, next.body.message_id);
    assert.deepEqual(
      replies.map((m: { text: string }) => m.text),
      [FALLBACK, HOURS],
    );
    await waitFor(async () => workerLog.join('').includes('TURN_FAILED'), { what: 'the TURN_FAILED alert in the worker log' });
    const logs = workerLog.join('') + h.logs.text();
    assert.ok(!logs.includes(ERROR_MARKER), 'no log line carries what the failed query echoed');
    assert.ok(!logs.includes(secret), "no log line carries the customer's text");
  });

  it('a turn step that keeps failing with a retryable error stops after its attempts and falls back', async () => {
    const tenant = await tenantWithKnowledge();
    const from = uniquePhone();
    // A serialization failure is worth retrying, but not forever.
    await owner.query(`INSERT INTO poison VALUES ('40001')`);
    try {
      const r = await send(tenant, from, 'what are your opening hours?');
      const replies = await repliesTo(tenant, from, r.body.message_id);
      assert.deepEqual(
        replies.map((m: { text: string }) => m.text),
        [FALLBACK],
      );
    } finally {
      await owner.query('DELETE FROM poison');
    }
    const rows = await owner.query(`SELECT failure_type FROM failed_turns WHERE tenant_id = $1`, [tenant.id]);
    assert.deepEqual(rows.rows, [{ failure_type: 'DatabaseError' }]);
    const next = await send(tenant, from, 'when are you open?');
    const replies = await repliesTo(tenant, from, next.body.message_id);
    assert.equal(replies.at(-1).text, HOURS);
    assert.ok(!(workerLog.join('') + h.logs.text()).includes(ERROR_MARKER));
  });

  it("a query that fails in the API logs its SQLSTATE, not what it echoed or the customer's text, and changes nothing", async () => {
    const tenant = await tenantWithKnowledge();
    const secret = `CUSTOMERSECRET${randomBytes(4).toString('hex')}`;
    const outbox = async () => (await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox')).rows[0].n;
    const queued = await outbox();
    await owner.query(`INSERT INTO poison_inbound VALUES ('22001')`);
    try {
      const r = await send(tenant, uniquePhone(), `${secret} hello`);
      assert.equal(r.status, 500);
      assert.equal(r.body.error.code, 'INTERNAL');
      assert.ok(!JSON.stringify(r.body).includes(ERROR_MARKER));
    } finally {
      await owner.query('DELETE FROM poison_inbound');
    }
    assert.equal(await outbox(), queued);
    const logs = h.logs.text();
    assert.match(logs, /SQLSTATE 22001/, 'the failure is logged, as its SQLSTATE');
    assert.ok(!logs.includes(ERROR_MARKER), 'no log line carries what the failed query echoed');
    assert.ok(!logs.includes(secret), "no log line carries the customer's text");
  });
});
