import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Config } from '../core/platform/config.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import type { Providers } from '../core/providers/index.js';
import type { Services as ParleyServices } from '../core/platform/services.js';
import type { AiDeps } from '../activities/ai.js';
import type { AiToolSource } from '../core/ai/tools.js';
import { dataConverter, FAILURE_CONVERTER_PATH } from '../core/temporal/client.js';
import { installTemporalRuntime } from '../core/temporal/runtime.js';
import { createActivities } from '../activities/index.js';
import { POLLERS } from './pollers.js';
import { scrubActivityFailures } from './activity-failures.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/**
 * Options for every `bundleWorkflowCode` call: a prebuilt bundle must carry the same failure
 * converter as the worker's data converter, or workflow failures would leave in clear.
 */
export function workflowBundleOptions(workflowsPath = WORKFLOWS_PATH): { workflowsPath: string; failureConverterPath: string } {
  return { workflowsPath, failureConverterPath: FAILURE_CONVERTER_PATH };
}

export interface WorkerOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  db: Db;
  keyring: Keyring;
  providers: Providers;
  /** A workflow bundle prepared ahead (bundleWorkflowCode); otherwise bundled at start. */
  workflowBundlePath?: string;
  /** LLM tool sources and provider timeout (activities/ai.ts). */
  ai?: AiDeps['ai'];
  /** Benchmark-only switch (PARLEY_PAYLOAD_CODEC=off); payloads are encrypted otherwise. */
  payloadCodec?: boolean;
}

export async function createWorker(opts: WorkerOptions): Promise<{ worker: Worker; connection: NativeConnection }> {
  installTemporalRuntime();
  const connection = await NativeConnection.connect({ address: opts.address });
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundlePath ? { workflowBundle: { codePath: opts.workflowBundlePath } } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities({ db: opts.db, keyring: opts.keyring, providers: opts.providers, ai: opts.ai }),
    dataConverter: dataConverter(opts.keyring, opts),
    interceptors: { activity: [scrubActivityFailures] },
    maxConcurrentLocalActivityExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 200,
    ...POLLERS,
  });
  return { worker, connection };
}

/** The worker for a runtime (its pool, keyring and providers) on the configured namespace and task queue. */
export function createWorkerFor(config: Config, runtime: ParleyServices, address: string, extra: { aiTools?: AiToolSource[] } = {}) {
  return createWorker({
    address,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    db: runtime.db,
    keyring: runtime.keyring,
    providers: runtime.providers,
    workflowBundlePath: config.PARLEY_WORKFLOW_BUNDLE,
    ai: { tools: extra.aiTools, requestTimeoutMs: config.AI_REQUEST_TIMEOUT_MS },
    payloadCodec: config.PARLEY_PAYLOAD_CODEC === 'on',
  });
}
