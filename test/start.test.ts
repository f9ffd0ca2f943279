import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { embeddedPostgresBlocker } from '../scripts/lib/embedded-postgres.js';
import { isPortFree, freePort } from '../scripts/lib/ports.js';
import { createTestDatabase } from './helpers/harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs a script to its end: exit code and everything it printed. */
function run(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, env }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, out: stdout + stderr }),
    );
  });
}

/** A pid nobody has: a process that ran and is gone. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

describe('npm start', () => {
  it('starts everything on its embedded defaults, and SIGTERM stops every part of it', { timeout: 180_000 }, async (t) => {
    // As root, a clone under a private directory cannot run the embedded server (npm start says
    // so); the shutdown is then checked against the suite's PostgreSQL instead.
    const blocker = await embeddedPostgresBlocker();
    if (blocker) t.diagnostic(`using a database on the suite's PostgreSQL: ${blocker}`);
    const database = blocker ? await createTestDatabase() : undefined;
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-start-'));
    const ports = {
      PORT: await freePort(),
      TEMPORAL_PORT: await freePort(),
      TEMPORAL_UI_PORT: await freePort(),
      EMBEDDED_PG_PORT: await freePort(),
    };
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'info' };
    for (const name of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'ADMIN_API_KEY', 'PARLEY_ENCRYPTION_KEY']) delete env[name];
    if (database) env.DATABASE_URL = database.url;
    for (const [name, port] of Object.entries(ports)) env[name] = String(port);
    // A lock left behind by a run that crashed does not stop the next start.
    await writeFile(path.join(dataDir, 'parley.lock'), JSON.stringify({ pid: await deadPid(), apiUrl: 'http://x', temporalAddress: 'x' }));
    const start = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    start.stdout.on('data', (d: Buffer) => (out += d.toString()));
    start.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let pgDir: string | undefined;
    try {
      const deadline = Date.now() + 150_000;
      while (!out.includes('Ctrl-C stops everything')) {
        assert.equal(start.exitCode, null, `npm start exited early:\n${out}`);
        assert.ok(Date.now() < deadline, `npm start did not get ready:\n${out}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      pgDir = /PostgreSQL \(embedded\) in (\S+)/.exec(out)?.[1];
      const base = `http://127.0.0.1:${ports.PORT}`;
      const ready = out.slice(out.indexOf('Parley is ready.'));
      for (const line of [`API:          ${base}`, `API docs:     ${base}/docs`, 'Admin key:    prl_admin_', 'Logs:', 'Temporal UI:'])
        assert.ok(ready.includes(line), `the ready block has "${line}":\n${out}`);

      // One JSON line per request in DATA_DIR/logs/parley.log, none on the terminal, no query strings.
      const requests = 12;
      for (let i = 0; i < requests; i++) {
        const res = await fetch(i % 3 === 2 ? `${base}/no-such-route?token=SECRET${i}` : `${base}/health?token=SECRET${i}`);
        assert.equal(res.status, i % 3 === 2 ? 404 : 200);
        await res.arrayBuffer();
      }
      const logFile = path.join(dataDir, 'logs', 'parley.log');
      let lines: { msg?: string; route?: string | null; status?: number; code?: string }[] = [];
      for (const until = Date.now() + 5_000; lines.length < requests && Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
        const text = await readFile(logFile, 'utf8');
        assert.doesNotMatch(text, /SECRET/, 'no query string in the log');
        lines = text
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as (typeof lines)[number])
          .filter((l) => l.msg === 'request' || l.msg === 'incoming request' || l.msg === 'request completed');
      }
      assert.equal(lines.length, requests, 'one line per request');
      assert.ok(lines.every((l) => l.msg === 'request'));
      assert.deepEqual(lines[2], { ...lines[2], route: null, status: 404, code: 'ROUTE_NOT_FOUND' });
      assert.deepEqual(lines[0], { ...lines[0], route: '/health', status: 200 });
      assert.doesNotMatch(
        await readFile(logFile, 'utf8'),
        /WORKFLOW_WATCHDOG_MISSING/,
        "the worker's workflow threads have their watchdog",
      );
      assert.ok(out.split('\n').length < 30, `the terminal stays short:\n${out}`);
      assert.doesNotMatch(out, /"level"/, 'no JSON on the terminal');

      // A second start on the same DATA_DIR refuses in one line and leaves the first running.
      const second = await run('scripts/start.ts', [], env);
      assert.equal(second.code, 1, second.out);
      assert.match(
        second.out,
        new RegExp(`^Parley is already running \\(pid ${start.pid}, http://127\\.0\\.0\\.1:${ports.PORT}\\): stop it first.*\\n$`),
      );
      assert.equal((await fetch(`${base}/health`)).status, 200);

      // `npm run temporal` reaches this start's Temporal (not on the CLI's default port) without --address.
      const cli = await run('scripts/temporal.ts', ['operator', 'namespace', 'describe', '--namespace', 'default'], env);
      assert.equal(cli.code, 0, cli.out);
      assert.match(cli.out, /NamespaceInfo\.Name\s+default/);
      if (!blocker) {
        // Parley runs as parley_app: no superuser, no roles, no schema changes.
        const password = (await readFile(path.join(dataDir, 'parley-app-password'), 'utf8')).trim();
        const app = new pg.Client({
          connectionString: `postgres://parley_app:${encodeURIComponent(password)}@127.0.0.1:${ports.EMBEDDED_PG_PORT}/parley`,
        });
        await app.connect();
        try {
          const [role] = (await app.query('SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user')).rows;
          assert.deepEqual(role, { rolsuper: false, rolcreaterole: false, rolcreatedb: false });
          await assert.rejects(app.query('CREATE TABLE intruder (x int)'), /permission denied/);
          await assert.rejects(app.query("SELECT pg_read_file('PG_VERSION')"), /permission denied/);
          assert.equal((await app.query('SELECT count(*)::int AS n FROM tenants')).rows[0].n >= 0, true);
        } finally {
          await app.end();
        }
      }
      const children = execFileSync('pgrep', ['-P', String(start.pid)])
        .toString()
        .trim()
        .split('\n')
        .map(Number);
      assert.ok(children.length >= (blocker ? 2 : 3), 'the worker, the Temporal server and PostgreSQL run as children');

      start.kill('SIGTERM');
      const [code] = await once(start, 'exit');
      assert.equal(code, 0, out);
      // Helpers such as tsx's esbuild service notice their parent's exit a moment later.
      const gone = Date.now() + 5_000;
      while (children.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
      const survivors = children.filter(alive).map((pid) =>
        execFileSync('ps', ['-o', 'args=', '-p', String(pid)])
          .toString()
          .trim(),
      );
      assert.deepEqual(survivors, [], 'no child outlives npm start');
      for (const port of Object.values(ports)) assert.ok(await isPortFree(port), `port ${port} is released`);
      await assert.rejects(readFile(path.join(dataDir, 'parley.lock')), 'the lock is gone');
    } finally {
      if (start.exitCode === null) start.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
      await database?.drop();
      // As root the embedded database lives outside DATA_DIR (scripts/lib/embedded-postgres.ts).
      if (pgDir && !pgDir.startsWith(dataDir)) await rm(path.dirname(pgDir), { recursive: true, force: true });
    }
  });

  it('reports bad and missing settings in one line each, without a stack trace', { timeout: 60_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: 'abc', LOG_LEVEL: 'loud' };
    for (const name of ['DATABASE_URL', 'TEMPORAL_ADDRESS']) delete env[name];
    const [start, api, worker] = await Promise.all([
      run('scripts/start.ts', [], env),
      run('api/main.ts', [], { ...env, PORT: '3000', LOG_LEVEL: 'info' }),
      run('worker/main.ts', [], env),
    ]);
    const badSettings =
      'Invalid setting PORT: expected a number, got "abc"\nInvalid setting LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"\n';
    assert.deepEqual(start, { code: 1, out: badSettings });
    assert.deepEqual(worker, { code: 1, out: badSettings });
    assert.deepEqual(api, {
      code: 1,
      out:
        'Missing setting DATABASE_URL: required for `npm run api` (use `npm start` for the embedded default)\n' +
        'Missing setting TEMPORAL_ADDRESS: required for `npm run api`\n',
    });
  });
});
