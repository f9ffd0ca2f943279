import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/activity';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import { scrubActivityFailures } from '../worker/activity-failures.js';

const SECRET = 'hello, my number is +15557654321';

/** A pg server error as node-postgres raises it. */
const pgError = Object.assign(new Error(`invalid input syntax for type integer: "${SECRET}"`), { code: '22P02', severity: 'ERROR' });

describe('activity failures never carry query parameters', () => {
  const env = new MockActivityEnvironment(undefined, { interceptors: [scrubActivityFailures] });

  it('a query its input breaks becomes a non-retryable DatabaseError naming only its SQLSTATE', async () => {
    const err = await env
      .run(async () => {
        throw new DrizzleQueryError('select $1::int', [SECRET], pgError);
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'DatabaseError');
    assert.equal(err.nonRetryable, true, 'the same input fails the same way on every retry');
    assert.match(err.message, /SQLSTATE 22P02/);
    assert.ok(!`${err.message}${err.stack}`.includes('+15557654321'));
  });

  it('a lost connection stays retryable', async () => {
    const lost = Object.assign(new Error(`terminating connection due to administrator command: ${SECRET}`), {
      code: '57P01',
      severity: 'FATAL',
    });
    const err = await env
      .run(async () => {
        throw new DrizzleQueryError('select $1::text', [SECRET], lost);
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure);
    assert.equal(err.type, 'DatabaseError');
    assert.equal(err.nonRetryable, false);
    assert.ok(!`${err.message}${err.stack}`.includes('+15557654321'));
  });

  it('other failures pass through unchanged', async () => {
    const original = ApplicationFailure.create({ type: 'BadRequest', message: 'no such intent', nonRetryable: true });
    const err = await env
      .run(async () => {
        throw original;
      })
      .catch((e: unknown) => e);
    assert.equal(err, original);
  });
});
