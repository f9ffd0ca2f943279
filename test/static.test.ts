import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

/** Types and lint rules are part of the suite: floating promises, and the workflow sandbox's import rules. */
describe('static checks', () => {
  it('type-checks (tsc --noEmit, strict)', async () => {
    const result = await run(bin('tsc'), ['--noEmit'], { cwd: root, maxBuffer: 16 * 1024 * 1024 }).catch((e) => e);
    assert.equal(result.code ?? 0, 0, `${result.stdout ?? ''}${result.stderr ?? ''}`);
  });

  it('lints (no floating promises; no Node built-ins or I/O in workflows)', async () => {
    const result = await run(bin('eslint'), ['.'], { cwd: root, maxBuffer: 16 * 1024 * 1024 }).catch((e) => e);
    assert.equal(result.code ?? 0, 0, `${result.stdout ?? ''}${result.stderr ?? ''}`);
  });
});
