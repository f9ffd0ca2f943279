import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type pg from 'pg';
import { sql } from 'drizzle-orm';
import { createDb, createPool } from '../core/db/client.js';
import { registerErrorHandling } from '../api/errors.js';
import { createTestDatabase, LogCapture } from './helpers/harness.js';

const SECRET_TEXT = 'my card number is 4111 1111 1111 1111, call +15557654321';

describe('the error mapper: busy pools and failed queries', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: pg.Pool;
  const logs = new LogCapture();
  const app = Fastify({ logger: { level: 'info', stream: logs } });

  before(async () => {
    database = await createTestDatabase();
    pool = createPool(database.url, 1, 300);
    const db = createDb(pool);
    registerErrorHandling(app);
    app.get('/busy', async () => (await pool.query('SELECT 1 AS one')).rows[0]);
    // A query that fails inside PostgreSQL with the customer's text as its parameter.
    app.get('/failing', async () => db.execute(sql`SELECT ${SECRET_TEXT}::int AS n`));
    await app.ready();
  });
  after(async () => {
    await app.close();
    await pool.end();
    await database.drop();
  });

  it('answers 503 DATABASE_BUSY when no connection is free within the acquire timeout, instead of hanging', async () => {
    const held = await pool.connect();
    try {
      const started = Date.now();
      const res = await app.inject({ method: 'GET', url: '/busy' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error.code, 'DATABASE_BUSY');
      assert.equal(res.headers['retry-after'], '1');
      assert.ok(Date.now() - started < 5_000, 'gave up after the acquire timeout');
    } finally {
      held.release();
    }
    const ok = await app.inject({ method: 'GET', url: '/busy' });
    assert.equal(ok.statusCode, 200, 'the pool works again once a connection is free');
  });

  it('a failed query leaves as a 500 without internals, and its parameters never reach the log', async () => {
    const res = await app.inject({ method: 'GET', url: '/failing' });
    assert.equal(res.statusCode, 500);
    assert.deepEqual(res.json(), { error: { code: 'INTERNAL', message: 'internal error; the request was not completed' } });
    const logged = logs.text();
    assert.match(logged, /SQLSTATE 22P02/, 'the log names the SQLSTATE');
    assert.ok(!logged.includes('4111'), 'no parameter in the log');
    assert.ok(!logged.includes('+15557654321'), 'no phone number in the log');
    assert.ok(!logged.includes('Failed query'), 'no SQL text in the log');
  });
});
