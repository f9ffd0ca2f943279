import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { benchDatabase } from './database.js';
import { freePort } from '../../scripts/lib/ports.js';
import { ensureTemporalCli } from '../../scripts/lib/temporal-cli.js';
import { startTemporalDev } from '../../scripts/lib/temporal-dev.js';
import { Keyring, randomToken } from '../../core/platform/crypto.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Stack {
  baseUrl: string;
  databaseUrl: string;
  temporalAddress: string;
  adminKey: string;
  encryptionKey: string;
  server: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Everything `npm start` runs, on fresh state: a scratch database (bench/lib/database.ts), a Temporal dev server on a SQLite file with the WAL pragmas, and Parley's
 * API + worker as one child process (scripts/start.ts) with default settings.
 */
export async function startStack(env: Record<string, string> = {}, log = (l: string) => console.error(`[bench] ${l}`)): Promise<Stack> {
  const stops: (() => Promise<unknown>)[] = [];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-bench-'));
  stops.push(() => rm(dir, { recursive: true, force: true }));
  try {
    const { url: databaseUrl } = await benchDatabase(stops, log);
    const cli = await ensureTemporalCli(process.env.TEMPORAL_CLI, log);
    const temporal = await startTemporalDev({
      cli,
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: path.join(dir, 'temporal.db'),
      headless: true,
    });
    stops.push(() => temporal.stop());

    const port = await freePort();
    const adminKey = `prl_admin_${randomToken(24)}`;
    const encryptionKey = Keyring.generateSpec();
    // BENCH_CPU_PROF=<dir> writes V8 CPU profiles of Parley's API and worker processes there (open them in Chrome DevTools).
    const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
    const server = spawn(process.execPath, [...profile, '--import', 'tsx', 'scripts/start.ts'], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        PORT: String(port),
        DATABASE_URL: databaseUrl,
        TEMPORAL_ADDRESS: temporal.address,
        ADMIN_API_KEY: adminKey,
        PARLEY_ENCRYPTION_KEY: encryptionKey,
        DATA_DIR: path.join(dir, 'data'),
        LOG_LEVEL: 'warn',
        // Benchmarks measure the engine, not the per-key request limit.
        RATE_LIMIT_PER_MINUTE: '0',
        ...env,
      },
    });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          if (server.exitCode !== null) return resolve();
          server.once('exit', () => resolve());
          server.kill('SIGTERM');
        }),
    );
    const baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error('Parley exited during start-up');
      const ok = await fetch(`${baseUrl}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error('Parley did not become healthy');
      await delay(250);
    }
    return {
      baseUrl,
      databaseUrl,
      temporalAddress: temporal.address,
      adminKey,
      encryptionKey,
      server,
      async stop() {
        for (const s of stops.reverse()) await s().catch(() => undefined);
      },
    };
  } catch (err) {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    throw err;
  }
}
