import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { Harness } from './harness.js';
import { WORKER_NODE_FLAGS } from '../../worker/node-flags.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `worker/main.ts` as its own process, started as `npm run worker` starts it, with `env` over the
 * runner's. Its stderr is piped and an IPC channel open: the worker reports "polling" over it.
 */
export function spawnWorkerProcess(env: Record<string, string>, opts: { stdout?: 'pipe' } = {}): ChildProcess {
  return spawn(process.execPath, [...WORKER_NODE_FLAGS, 'worker/main.ts'], {
    cwd: root,
    stdio: ['ignore', opts.stdout ?? 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  });
}

/** The settings a process needs to join the harness: its database, Temporal and task queue, keys. */
function harnessEnv(h: Harness): Record<string, string> {
  return {
    DATABASE_URL: h.databaseUrl,
    TEMPORAL_ADDRESS: h.config.TEMPORAL_ADDRESS!,
    TEMPORAL_TASK_QUEUE: h.config.TEMPORAL_TASK_QUEUE,
    PARLEY_ENCRYPTION_KEY: h.config.PARLEY_ENCRYPTION_KEY!,
    ADMIN_API_KEY: h.config.ADMIN_API_KEY!,
    DATA_DIR: h.config.DATA_DIR,
    EGRESS_ALLOW: h.config.EGRESS_ALLOW.join(','),
  };
}

/** A worker process against the harness's database and task queue. */
export function spawnWorker(h: Harness, env: Record<string, string> = {}, opts: { stdout?: 'pipe' } = {}): ChildProcess {
  const child = spawnWorkerProcess({ ...harnessEnv(h), ...env }, opts);
  child.stderr?.on('data', () => undefined);
  return child;
}

/**
 * `api/main.ts` as its own process (an API replica, relay included) on `port`, against the
 * harness's database and Temporal; resolves once it answers `GET /health`.
 */
export async function spawnApi(h: Harness, port: number, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn', ...harnessEnv(h), HOST: '127.0.0.1', PORT: String(port), ...env },
  });
  child.stderr?.on('data', () => undefined);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`API process exited with ${child.exitCode}`);
    const up = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return child;
    if (Date.now() > deadline) {
      await killHard(child);
      throw new Error('API process did not come up within 60 s');
    }
    await delay(200);
  }
}

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
