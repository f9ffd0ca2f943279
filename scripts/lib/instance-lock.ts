import { readFileSync, unlinkSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** What `npm start` records in DATA_DIR/parley.lock while it runs. */
export interface Instance {
  pid: number;
  apiUrl: string;
  temporalAddress: string;
}

const lockFile = (dataDir: string) => path.join(dataDir, 'parley.lock');

/** Alive, and (where /proc tells) still `npm start` rather than a later process that got the pid. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('start.');
  } catch {
    return true;
  }
}

/** The `npm start` running on this DATA_DIR, if any; a lock left by a crashed run does not count. */
export async function runningInstance(dataDir: string): Promise<Instance | undefined> {
  let held: Partial<Instance>;
  try {
    held = JSON.parse(await readFile(lockFile(dataDir), 'utf8'));
  } catch {
    return undefined;
  }
  const ok = typeof held.pid === 'number' && held.pid !== process.pid && isRunning(held.pid);
  return ok ? (held as Instance) : undefined;
}

/**
 * Takes DATA_DIR for this process (two runs on one data directory would share PostgreSQL's
 * and Temporal's files), or returns the live instance that holds it. A stale lock is taken over.
 * The lock goes when this process exits.
 */
export async function lockDataDir(dataDir: string, me: Omit<Instance, 'pid'>): Promise<Instance | undefined> {
  const file = lockFile(dataDir);
  const content = JSON.stringify({ pid: process.pid, ...me }) + '\n';
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, content, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await runningInstance(dataDir);
      if (holder) return holder;
      // Another start took over the same stale lock at this moment.
      if (attempt > 0) throw new Error(`${file} was taken by another start; try again`);
      await rm(file, { force: true });
    }
  }
  process.once('exit', () => {
    try {
      if ((JSON.parse(readFileSync(file, 'utf8')) as Instance).pid === process.pid) unlinkSync(file);
    } catch {
      // Already gone.
    }
  });
  return undefined;
}
