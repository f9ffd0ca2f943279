import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import pg from 'pg';
import { startEmbeddedPostgres } from './lib/embedded-postgres.js';
import { freePort } from './lib/ports.js';
import { ensureTemporalCli } from './lib/temporal-cli.js';
import { startTestTemporal } from './lib/test-env.js';
import { workflowBundleOptions } from '../worker/create-worker.js';
import { WORKER_NODE_FLAGS } from '../worker/node-flags.js';

/**
 * `npm test`: one Temporal dev server (the installed CLI) and one PostgreSQL server
 * (TEST_DATABASE_URL, else embedded) for the whole suite, a workflow bundle built once,
 * then node's test runner over test/*.test.ts. Each test file makes its own database
 * and task queue. `npm test -- test/foo.test.ts` runs a subset.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const log = (line: string) => process.stderr.write(`[test] ${line}\n`);
const env = process.env;
const cleanups: (() => Promise<unknown>)[] = [];

async function serverUrl(): Promise<string> {
  if (env.TEST_DATABASE_URL) {
    const url = new URL(env.TEST_DATABASE_URL);
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    await client.end();
    log(`PostgreSQL: ${url.host} (TEST_DATABASE_URL)`);
    return url.toString();
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-test-pg-'));
  const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: await freePort(), persistent: false, log });
  cleanups.push(
    () => server.stop(),
    () => rm(dir, { recursive: true, force: true }),
  );
  log(`PostgreSQL: embedded in ${server.dataDir}`);
  return server.adminUrl;
}

let code = 1;
try {
  const cli = await ensureTemporalCli(env.TEMPORAL_CLI, log);
  const [databaseUrl, temporal] = await Promise.all([serverUrl(), startTestTemporal(cli)]);
  cleanups.push(() => temporal.teardown());
  log(`Temporal: ${temporal.address} (${cli})`);

  const bundleDir = await mkdtemp(path.join(os.tmpdir(), 'parley-bundle-'));
  cleanups.push(() => rm(bundleDir, { recursive: true, force: true }));
  const bundlePath = path.join(bundleDir, 'workflows.js');
  const { code: bundle } = await bundleWorkflowCode({ ...workflowBundleOptions(), logger: undefined });
  await writeFile(bundlePath, bundle);

  const args = process.argv.slice(2);
  const files = args.length
    ? args
    : (await readdir(path.join(root, 'test')))
        .filter((f) => f.endsWith('.test.ts'))
        .sort()
        .map((f) => path.join('test', f));
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, '--test', '--test-concurrency=2', ...files], {
      cwd: root,
      stdio: 'inherit',
      env: {
        ...env,
        TEST_DATABASE_URL: databaseUrl,
        TEST_TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_CLI: cli,
        PARLEY_WORKFLOW_BUNDLE: bundlePath,
      },
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
} catch (err) {
  log(`setup failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
process.exit(code);
