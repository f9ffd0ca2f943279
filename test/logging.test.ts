import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import { pino } from 'pino';
import { AppError, FailureType } from '../core/platform/errors.js';
import { providerFailure } from '../core/providers/http.js';
import { errorFields, sdkLogger } from '../core/temporal/logging.js';
import { LogFile } from '../scripts/lib/log-file.js';

describe('error log fields', () => {
  it('logs expected failures as their code, without a stack', () => {
    const rejected = providerFailure('rejected', { provider: 'meta', httpStatus: 400, code: '131047', title: 'Re-engagement message' });
    assert.deepEqual(errorFields(rejected), {
      code: FailureType.ProviderRejected,
      message: rejected.message,
      provider: 'meta',
      httpStatus: 400,
      providerCode: '131047',
    });
    assert.deepEqual(errorFields(new AppError(409, 'WINDOW_CLOSED', 'the window is closed')), {
      code: 'WINDOW_CLOSED',
      message: 'the window is closed',
    });
  });

  it('keeps the stack of anything unexpected', () => {
    const bug = new TypeError('x is undefined');
    assert.deepEqual(errorFields(bug), { name: 'TypeError', message: 'x is undefined', stack: bug.stack });
    const unknownType = ApplicationFailure.create({ type: 'SomethingElse', message: 'odd' });
    assert.ok('stack' in errorFields(unknownType));
  });

  it('logs a failed query as its SQLSTATE: never its SQL, parameters, detail or hint', () => {
    const marker = 'my number is +15550001111';
    const pgError = Object.assign(new Error(`stack depth limit exceeded near "${marker}"`), {
      code: '54001',
      severity: 'ERROR',
      detail: marker,
      hint: marker,
      where: `PL/pgSQL function f(text) line 1 at RAISE: ${marker}`,
    });
    const fields = errorFields(new DrizzleQueryError('select plainto_tsquery($1)', [marker], pgError));
    assert.deepEqual(fields, { name: 'DatabaseError', code: '54001', message: 'database query failed (SQLSTATE 54001)' });
    assert.deepEqual(errorFields(pgError), fields);
  });
});

describe("the Temporal SDK's log", () => {
  it('is JSON from pino, an expected activity failure one warn line with its code', () => {
    const lines: string[] = [];
    const out = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
    sdkLogger(pino({ name: 'worker' }, out)).warn('Activity failed', {
      activityType: 'sendReply',
      taskToken: 'AAAA',
      error: providerFailure('unavailable', { provider: 'twilio' }),
    });
    const entry = JSON.parse(lines.join('')) as Record<string, unknown>;
    assert.equal(entry.taskToken, undefined);
    assert.deepEqual(entry, {
      ...entry,
      level: 40,
      name: 'worker',
      msg: 'Activity failed',
      activityType: 'sendReply',
      error: { code: FailureType.ProviderUnavailable, message: (entry.error as { message: string }).message, provider: 'twilio' },
    });
  });
});

describe("npm start's log file", () => {
  it('keeps every line in the file and shows warnings once a minute on the terminal', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-logfile-'));
    try {
      const notices: string[] = [];
      const logs = new LogFile(path.join(dir, 'parley.log'), (line) => notices.push(line));
      const api = pino({ name: 'api' }, logs.stream());
      api.info({ method: 'GET', route: '/health', status: 200 }, 'request');
      for (let i = 0; i < 3; i++) api.warn({ method: 'POST', route: '/messages/send', status: 502, code: 'PROVIDER_FAILED' }, 'request');
      // A child's output arrives in pieces that do not follow lines.
      const worker = new PassThrough();
      logs.follow(worker);
      const line = JSON.stringify({ level: 50, name: 'worker', msg: 'Activity failed', activityType: 'sendReply', error: { code: 'X' } });
      worker.write(line.slice(0, 20));
      worker.end(line.slice(20) + '\nnot json\n');
      await new Promise((r) => setImmediate(r));
      await logs.close();

      assert.deepEqual(notices, [
        'warn (api): request POST /messages/send → 502 (PROVIDER_FAILED)',
        'error (worker): Activity failed in sendReply (X)',
      ]);
      const file = (await readFile(path.join(dir, 'parley.log'), 'utf8')).trimEnd().split('\n');
      assert.equal(file.length, 6);
      assert.equal(file[4], line);
      assert.equal(file[5], 'not json');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
