import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { OutboxRelay } from '../core/messaging/outbox-relay.js';
import { freePort } from '../scripts/lib/ports.js';
import { createHarness, createTemporalClient, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { killHard, spawnApi } from './helpers/processes.js';

const HOURS = 'We are open Monday to Friday, 9am to 5pm.';

async function setup(h: Harness) {
  const tenant = await h.createTenant();
  const put = await h.request('PUT', `/routes/tenants/${tenant.id}/knowledge`, {
    key: tenant.key,
    body: { entries: [{ title: 'Opening hours', content: HOURS }] },
  });
  assert.equal(put.status, 200);
  return tenant;
}

/** Accepts `n` messages from `from` while the harness's own relay stands still; their ids in order. */
async function backlog(h: Harness, tenant: { id: string; key: string }, from: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await h.inbound(tenant.key, { from, message: `message ${i}`, tenant_id: tenant.id, timestamp: new Date().toISOString() });
    assert.equal(r.status, 202);
    ids.push(r.body.message_id);
  }
  return ids;
}

/** The message ids the replies to `from` answer, in reply order, once they cover `n`. */
function answeredIds(h: Harness, tenant: { id: string; key: string }, from: string, n: number): Promise<string[]> {
  return waitFor(
    async () => {
      const all = (await h.sandbox(tenant.id, tenant.key, from)).flatMap((m: { in_reply_to: string[] }) => m.in_reply_to);
      return all.length >= n && all;
    },
    { timeoutMs: 120_000, what: `replies covering ${n} messages from ${from}` },
  );
}

const undelivered = async (h: Harness) =>
  (await h.runtime.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE delivered_at IS NULL')).rows[0].n;

/**
 * A relay pool whose connections die (terminated by PostgreSQL) when the relay marks rows
 * delivered: the signal has reached Temporal, the rows are still pending, the conversation's
 * advisory lock goes with the connection, as when the API process crashes at that point.
 */
function poolDyingBeforeMark(pool: pg.Pool): pg.Pool {
  return {
    query: pool.query.bind(pool),
    async connect() {
      const client = await pool.connect();
      client.on('error', () => undefined);
      const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
      return Object.assign(client, {
        async query(text: string, values?: unknown[]) {
          if (text.includes('SET delivered_at')) await query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => undefined);
          return query(text, values);
        },
      });
    },
  } as unknown as pg.Pool;
}

describe('outbox relay under crashes and replicas', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('a relay that dies between signalWithStart and marking its rows loses nothing and answers nothing twice', async () => {
    const h = await createHarness();
    cleanups.push(() => h.close());
    const tenant = await setup(h);
    await h.api.relay.stop();
    const from = uniquePhone();
    const ids = await backlog(h, tenant, from, 30);

    const pool = new pg.Pool({ connectionString: h.databaseUrl, max: 2 });
    pool.on('error', () => undefined);
    cleanups.push(() => pool.end());
    const temporal = await createTemporalClient({
      address: h.config.TEMPORAL_ADDRESS!,
      namespace: h.config.TEMPORAL_NAMESPACE,
      keyring: h.runtime.keyring,
    });
    cleanups.push(() => temporal.connection.close());
    const dying = new OutboxRelay({
      pool: poolDyingBeforeMark(pool),
      temporal,
      keyring: h.runtime.keyring,
      taskQueue: h.config.TEMPORAL_TASK_QUEUE,
      log: pino({ level: 'silent' }) as unknown as FastifyBaseLogger,
      sweepMs: 60_000,
      defaultDebounceMs: 0,
      windowSeconds: h.config.CONVERSATION_WINDOW_S,
      turnsPerRun: h.config.CONVERSATION_TURNS_PER_RUN,
      maxBatchMessages: 10,
    });
    const { rows } = await h.runtime.pool.query<{ conversation_id: string }>('SELECT conversation_id FROM messages WHERE id = $1', [
      ids[0],
    ]);
    dying.kick(rows[0].conversation_id);
    await dying.stop();

    // The first ten reached the workflow and are answered, yet all thirty still wait in the outbox.
    assert.deepEqual(await answeredIds(h, tenant, from, 10), ids.slice(0, 10));
    assert.equal(await undelivered(h), 30);

    h.api.relay.start();
    assert.deepEqual(await answeredIds(h, tenant, from, 30), ids, 'the re-sent ten dropped by id, the rest answered once, in order');
    assert.equal(await undelivered(h), 0);
    const next = await h.inbound(tenant.key, { from, message: 'open?', tenant_id: tenant.id, timestamp: new Date().toISOString() });
    assert.deepEqual(await answeredIds(h, tenant, from, 31), [...ids, next.body.message_id], 'no late duplicate either');
  });

  it('two API replicas relay one database, one killed mid-backlog: every message answered exactly once, in order', async () => {
    const h = await createHarness();
    cleanups.push(() => h.close());
    const tenant = await setup(h);
    // This process only accepts: the two replicas below do all the relaying.
    await h.api.relay.stop();
    const contacts = [uniquePhone(), uniquePhone(), uniquePhone()];
    const ids: Record<string, string[]> = {};
    for (const from of contacts) ids[from] = await backlog(h, tenant, from, 250);
    const total = contacts.length * 250;
    assert.equal(await undelivered(h), total);

    const replicas: ChildProcess[] = [];
    cleanups.push(() => Promise.all(replicas.map(killHard)));
    const env = { RELAY_SWEEP_MS: '100' };
    replicas.push(await spawnApi(h, await freePort(), env), await spawnApi(h, await freePort(), env));
    // Kill one replica with SIGKILL as soon as relaying is under way: whatever it held (a lock, a
    // signalled batch not yet marked) must be picked up by the other.
    await waitFor(async () => (await undelivered(h)) < total, { timeoutMs: 60_000, intervalMs: 10, what: 'relaying to start' });
    await killHard(replicas[0]);

    for (const from of contacts) {
      assert.deepEqual(await answeredIds(h, tenant, from, 250), ids[from], `every message from ${from} answered once, in order`);
    }
    assert.equal(await undelivered(h), 0);
    // Nothing late: the next message is answered, alone.
    const from = contacts[0];
    const next = await h.inbound(tenant.key, { from, message: 'open?', tenant_id: tenant.id, timestamp: new Date().toISOString() });
    assert.deepEqual(await answeredIds(h, tenant, from, 251), [...ids[from], next.body.message_id]);
  });
});

describe('outbox relay: dead letter', () => {
  let h: Harness;
  after(() => h?.close());

  it('a conversation whose rows keep failing is dead-lettered with an alert, and delivered once the cause is fixed', async () => {
    h = await createHarness();
    const tenant = await setup(h);
    await h.api.relay.stop();
    const from = uniquePhone();
    const [first] = await backlog(h, tenant, from, 1);
    // The row cannot be relayed (its ciphertext no longer decrypts, as after a lost key), and has
    // already failed all but its last attempt: the ninth backoff would otherwise take a minute.
    const { rows } = await h.runtime.pool.query<{ body_enc: string }>('SELECT body_enc FROM messages WHERE id = $1', [first]);
    await h.runtime.pool.query(`UPDATE messages SET body_enc = 'k9:AAAA' WHERE id = $1`, [first]);
    await h.runtime.pool.query('UPDATE outbox SET attempts = 9 WHERE message_id = $1', [first]);
    h.api.relay.start();

    const dead = await waitFor(
      async () => {
        const health = await h.request('GET', '/');
        return health.body.relay.dead_lettered === 1 && health.body;
      },
      { what: 'the row counted as dead-lettered' },
    );
    assert.equal(dead.relay.pending, 1);
    assert.match(h.logs.text(), /OUTBOX_DEAD_LETTERED/);
    const [row] = (
      await h.runtime.pool.query(
        "SELECT attempts, last_error, next_attempt_at > now() + interval '4 minutes' AS parked FROM outbox WHERE message_id = $1",
        [first],
      )
    ).rows;
    assert.equal(row.attempts, 10);
    assert.equal(row.parked, true, 'a dead-lettered conversation is retried every 5 minutes, not in a busy loop');
    assert.equal(await undelivered(h), 1);

    // The cause is fixed; the customer's next message relays the conversation, oldest row first.
    await h.runtime.pool.query('UPDATE messages SET body_enc = $2 WHERE id = $1', [first, rows[0].body_enc]);
    const [next] = await backlog(h, tenant, from, 1);
    assert.deepEqual(await answeredIds(h, tenant, from, 2), [first, next]);
    const health = await h.request('GET', '/');
    assert.equal(health.body.relay.dead_lettered, 0);
    assert.equal(health.body.relay.pending, 0);
  });
});
