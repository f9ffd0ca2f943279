import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import { STUCK_EXIT_CODE, watchedThreads } from '../worker/workflow-watchdog.cjs';
import { workflowBundleOptions } from '../worker/create-worker.js';
import { spawnWorkerProcess } from './helpers/processes.js';
import {
  TEST_ADMIN_KEY,
  TEST_ENCRYPTION_KEY,
  createHarness,
  createTemporalClient,
  createTestDatabase,
  testKeyring,
  testTemporalAddress,
} from './helpers/harness.js';

describe('workflow threads watchdog', () => {
  it("covers the workflow threads of the suite's workers, as it does npm start's and npm run worker's", async () => {
    // Other threads (tsx's loader) may hold a slot too: the worker's own workflow thread must add one.
    const before = watchedThreads();
    const h = await createHarness();
    try {
      assert.ok(watchedThreads() > before, 'the test runner preloads worker/workflow-watchdog.cjs (WORKER_NODE_FLAGS)');
    } finally {
      await h.close();
    }
  });

  it('stops a worker whose workflow code never yields, so that it is restarted and the task retried', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-stuck-'));
    const db = await createTestDatabase();
    const client = await createTemporalClient({ address: testTemporalAddress(), namespace: 'default', keyring: testKeyring() });
    const taskQueue = `stuck-${randomBytes(6).toString('hex')}`;
    const workflowId = `stuck/${randomBytes(6).toString('hex')}`;
    try {
      const bundle = path.join(dir, 'workflows.js');
      const { code } = await bundleWorkflowCode({
        ...workflowBundleOptions(fileURLToPath(new URL('./fixtures/stuck-workflow/index.ts', import.meta.url))),
        logger: new DefaultLogger('WARN'),
      });
      await writeFile(bundle, code);
      const worker = spawnWorkerProcess({
        DATABASE_URL: db.url,
        TEMPORAL_ADDRESS: testTemporalAddress(),
        TEMPORAL_TASK_QUEUE: taskQueue,
        PARLEY_WORKFLOW_BUNDLE: bundle,
        PARLEY_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        DATA_DIR: dir,
      });
      let stderr = '';
      worker.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = once(worker, 'exit');
      await Promise.race([once(worker, 'message'), exited.then(() => assert.fail(`the worker exited during start-up:\n${stderr}`))]);
      assert.doesNotMatch(stderr, /WORKFLOW_WATCHDOG_MISSING/);

      const startedAt = Date.now();
      await client.workflow.start('stuckWorkflow', { taskQueue, workflowId, workflowTaskTimeout: '60s' });
      const timer = setTimeout(() => worker.kill('SIGKILL'), 60_000);
      const [exitCode] = await exited;
      clearTimeout(timer);
      assert.equal(exitCode, STUCK_EXIT_CODE, `the watchdog stops the worker:\n${stderr}`);
      const line = JSON.parse(stderr.split('\n').find((l) => l.includes('WORKFLOW_THREAD_STUCK'))!);
      // The SDK's default isolate execution timeout (5 s) is the limit, as with Node's own watchdog.
      assert.equal(line.timeoutMs, 5000);
      assert.ok(line.runningMs > 5000 && Date.now() - startedAt < 30_000, `stopped ${line.runningMs} ms into the stuck call`);
    } finally {
      await client.workflow
        .getHandle(workflowId)
        .terminate()
        .catch(() => undefined);
      await client.connection.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
