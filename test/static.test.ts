import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

/** Runs a checker; a checker killed by a signal (out of memory, a timeout) fails like one that found errors. */
async function check(name: string, file: string, args: string[]): Promise<void> {
  const result = await run(file, args, { cwd: root, maxBuffer: 16 * 1024 * 1024 }).then(
    () => ({ code: 0, signal: null, output: '' }),
    (e: { code?: number | null; signal?: string | null; stdout?: string; stderr?: string }) => ({
      code: e.code ?? null,
      signal: e.signal ?? null,
      output: `${e.stdout ?? ''}${e.stderr ?? ''}`,
    }),
  );
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null }, `${name} failed:\n${result.output}`);
}

/** Types, lint rules and formatting are part of the suite: floating promises, and the workflow sandbox's import rules. */
describe('static checks', () => {
  it('type-checks (tsc --noEmit, strict)', () => check('tsc', bin('tsc'), ['--noEmit']));
  it('lints (no floating promises; no Node built-ins or I/O in workflows)', () => check('eslint', bin('eslint'), ['.']));
  it('is formatted (prettier --check; npm run format fixes it)', () => check('prettier', bin('prettier'), ['--check', '.']));

  it('counts a checker killed by a signal as a failure, not a pass', async () => {
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      // A child that kills itself before printing anything: no exit code, no output.
      const killed = check('killed', process.execPath, ['-e', `process.kill(process.pid, '${signal}')`]);
      await assert.rejects(killed, (err: assert.AssertionError) => {
        assert.deepEqual(err.actual, { code: null, signal });
        return true;
      });
    }
    await check('exits cleanly', process.execPath, ['-e', '']);
    await assert.rejects(check('finds errors', process.execPath, ['-e', 'process.exit(2)']), /finds errors failed/);
  });
});
