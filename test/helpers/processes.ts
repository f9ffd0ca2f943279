import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Harness } from './harness.js';
import { WORKER_NODE_FLAGS } from '../../worker/node-flags.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `worker/main.ts` as its own process, as `npm run worker` does, against the harness's database and task queue. */
export function spawnWorker(h: Harness, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, 'worker/main.ts'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: h.databaseUrl,
      TEMPORAL_ADDRESS: h.config.TEMPORAL_ADDRESS!,
      TEMPORAL_TASK_QUEUE: h.config.TEMPORAL_TASK_QUEUE,
      PARLEY_ENCRYPTION_KEY: h.config.PARLEY_ENCRYPTION_KEY!,
      ADMIN_API_KEY: h.config.ADMIN_API_KEY!,
      DATA_DIR: h.config.DATA_DIR,
      LOG_LEVEL: 'warn',
      ...env,
    },
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
