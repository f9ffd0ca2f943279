import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { Connection } from '@temporalio/client';

export interface TemporalDev {
  address: string;
  /** The server process (benchmarks read its CPU time). */
  pid: number;
  uiUrl: string;
  stop(): Promise<void>;
}

/**
 * `temporal server start-dev` with its state in a SQLite file. WAL journaling and
 * synchronous=normal raise the dev server's throughput several times over. With `logFile` its
 * output (JSON, warnings and errors) is appended there; otherwise only errors are kept, in memory.
 */
export async function startTemporalDev(opts: {
  cli: string;
  port: number;
  uiPort: number;
  dbFile?: string;
  headless?: boolean;
  logFile?: string;
}): Promise<TemporalDev> {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port)];
  args.push(...(opts.logFile ? ['--log-level', 'warn', '--log-format', 'json'] : ['--log-level', 'error']));
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort));
  if (opts.dbFile) args.push('--db-filename', opts.dbFile, '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal');
  const logFd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const child: ChildProcess = spawn(opts.cli, args, {
    stdio: logFd === undefined ? ['ignore', 'ignore', 'pipe'] : ['ignore', logFd, logFd],
  });
  if (logFd !== undefined) closeSync(logFd);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const lastOutput = async () => (opts.logFile ? (await readFile(opts.logFile, 'utf8')).slice(-4000) : stderr).trim();
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const address = `127.0.0.1:${opts.port}`;

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`temporal server start-dev exited (${child.exitCode}): ${await lastOutput()}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`Temporal dev server did not come up on ${address}: ${await lastOutput()}`);
      }
      await delay(250);
    }
  }
  return {
    address,
    pid: child.pid!,
    uiUrl: `http://127.0.0.1:${opts.uiPort}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
