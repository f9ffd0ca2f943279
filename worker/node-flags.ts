import { fileURLToPath } from 'node:url';

/**
 * Node flags for a process that runs a Temporal worker: TypeScript, and the workflow threads'
 * watchdog, which must be a `--require` preload to reach those threads (workflow-watchdog.cjs).
 * package.json's `worker` and `bench:lookups` scripts spell the same flags.
 */
export const WORKER_NODE_FLAGS = ['--import', 'tsx', '--require', fileURLToPath(new URL('./workflow-watchdog.cjs', import.meta.url))];
