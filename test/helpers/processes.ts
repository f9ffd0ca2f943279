import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Harness } from './harness.js';
import { WORKER_NODE_FLAGS } from '../../worker/node-flags.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `worker/main.ts` as its own process, started as `npm run worker` starts it, with `env` over the
 * runner's. Its stderr is piped and an IPC channel open: the worker reports "polling" over it.
 */
export function spawnWorkerProcess(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [...WORKER_NODE_FLAGS, 'worker/main.ts'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
}

/** A worker process against the harness's database and task queue. */
export function spawnWorker(h: Harness, env: Record<string, string> = {}): ChildProcess {
  const child = spawnWorkerProcess({
    DATABASE_URL: h.databaseUrl,
    TEMPORAL_ADDRESS: h.config.TEMPORAL_ADDRESS!,
    TEMPORAL_TASK_QUEUE: h.config.TEMPORAL_TASK_QUEUE,
    PARLEY_ENCRYPTION_KEY: h.config.PARLEY_ENCRYPTION_KEY!,
    ADMIN_API_KEY: h.config.ADMIN_API_KEY!,
    DATA_DIR: h.config.DATA_DIR,
    EGRESS_ALLOW: h.config.EGRESS_ALLOW.join(','),
    ...env,
  });
  child.stderr?.on('data', () => undefined);
  return child;
}

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
