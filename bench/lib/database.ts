import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../scripts/lib/embedded-postgres.js';
import { freePort } from '../../scripts/lib/ports.js';

export type Cleanups = (() => Promise<unknown>)[];

/**
 * A scratch database for a benchmark, dropped by the cleanups: on the server of
 * BENCH_DATABASE_URL (or TEST_DATABASE_URL), else on an embedded PostgreSQL started for it.
 */
export async function benchDatabase(
  cleanups: Cleanups,
  log: (line: string) => void = () => undefined,
): Promise<{ url: string; serverUrl: string }> {
  let serverUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-pg-'));
    // mkdtemp makes the directory private; the embedded server runs as `postgres` when we are root.
    await chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort(), persistent: false, log });
    cleanups.push(
      () => server.stop(),
      () => rm(dir, { recursive: true, force: true }),
    );
    serverUrl = server.adminUrl;
  }
  const name = `parley_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const server = serverUrl;
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: server });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), serverUrl };
}
