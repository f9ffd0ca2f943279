import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    for (const name of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'ADMIN_API_KEY', 'PARLEY_ENCRYPTION_KEY']) delete env[name];
    if (database) env.DATABASE_URL = database.url;
    for (const [name, port] of Object.entries(ports)) env[name] = String(port);
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
      const health = await fetch(`http://127.0.0.1:${ports.PORT}/health`);
      assert.equal(health.status, 200);
      assert.doesNotMatch(out, /WORKFLOW_WATCHDOG_MISSING/, "the worker's workflow threads have their watchdog");
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
    } finally {
      if (start.exitCode === null) start.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
      await database?.drop();
      // As root the embedded database lives outside DATA_DIR (scripts/lib/embedded-postgres.ts).
      if (pgDir && !pgDir.startsWith(dataDir)) await rm(path.dirname(pgDir), { recursive: true, force: true });
    }
  });
});
