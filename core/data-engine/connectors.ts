import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import pg from 'pg';
import mysql from 'mysql2/promise';
import {
  canonicalHost,
  EgressPolicy,
  egressFailure,
  egressFetch,
  egressPolicy,
  findEgressRefusal,
  readCapped,
  type CappableResponse,
  ResponseTimeoutError,
  ResponseTooLargeError,
} from '../platform/egress.js';
import {
  graphqlVariables,
  mysqlText,
  placeholders,
  scrub,
  secretValues,
  sqlPlaceholders,
  splitSecrets,
  type DataSourceConfig,
} from './config.js';

/**
 * Talks to a tenant's data source: only the configured named query, parameters always bound
 * (SQL) or URL-encoded (REST) or passed as variables (GraphQL), SQL on the extended protocol
 * (one statement, never the simple protocol) inside a READ ONLY transaction with a statement
 * timeout. Every destination goes through the egress policy: SQL connects to the address it
 * checked, HTTP is checked at connect time; answers are read with a byte and time cap.
 * Errors say whether retrying can help, and carry a stable code (SQLSTATE, MySQL error, HTTP
 * status, timeout) with Parley's own wording: a source's error text can quote a row (a name, a
 * phone number) and would end up in `data_access_logs` and in Temporal histories.
 */

export type LookupErrorKind = 'bad_request' | 'unavailable';

export class LookupError extends Error {
  constructor(
    readonly kind: LookupErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'LookupError';
  }
}

interface MyEntry {
  key: string;
  pool: Promise<mysql.Pool>;
  flavour?: 'mariadb' | 'mysql';
  lastUsed: number;
}

const MAX_ROWS = 20;
const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Connection pools per source, keyed by a hash of the whole config so a credential rotation gets a fresh pool. */
export class ConnectorPools {
  private readonly pg = new Map<string, { key: string; pool: Promise<pg.Pool> }>();
  private readonly my = new Map<string, MyEntry>();
  private sweeper?: NodeJS.Timeout;

  /** `egress`: the process's policy unless given (a tenant's own data worker passes an unrestricted one). */
  constructor(private readonly opts: { egress?: EgressPolicy } = {}) {}

  /** The checked address to connect to, and the name TLS verifies. */
  private async destination(host: string, port: number): Promise<{ address: string; servername?: string }> {
    const [address] = await (this.opts.egress ?? egressPolicy()).resolve(host, port);
    const name = canonicalHost(host);
    return { address, servername: address === name ? undefined : name };
  }

  /** Ends MySQL pools unused for a minute (pg pools close idle clients themselves). */
  private sweepIdle(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      for (const [slot, e] of this.my) {
        if (Date.now() - e.lastUsed > 60_000) {
          this.my.delete(slot);
          void e.pool.then((p) => p.end()).catch(() => undefined);
        }
      }
    }, 10_000);
    this.sweeper.unref();
  }

  private static key(tenantId: string, source: DataSourceConfig): string {
    return createHash('sha256')
      .update(JSON.stringify([tenantId, source]))
      .digest('hex');
  }

  pgPool(tenantId: string, source: DataSourceConfig, timeoutMs: number): Promise<pg.Pool> {
    const slot = `${tenantId}/${source.id}`;
    const key = ConnectorPools.key(tenantId, source);
    const cur = this.pg.get(slot);
    if (cur?.key === key) return cur.pool;
    if (cur) void cur.pool.then((p) => p.end()).catch(() => undefined);
    const c = source.connection;
    const port = c.port ?? 5432;
    const pool = this.destination(c.host!, port).then((dest) => {
      const p = new pg.Pool({
        host: dest.address,
        port,
        database: c.database,
        user: c.username,
        password: c.password,
        ssl: c.ssl ? { rejectUnauthorized: true, ...(dest.servername ? { servername: dest.servername } : {}) } : undefined,
        max: 10,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: timeoutMs,
        // Idle connections to a tenant's database must not keep a stopping worker alive.
        allowExitOnIdle: true,
      });
      p.on('error', () => undefined);
      return p;
    });
    // A refused or unresolvable host is tried again on the next lookup, not remembered.
    pool.catch(() => this.pg.get(slot)?.pool === pool && this.pg.delete(slot));
    this.pg.set(slot, { key, pool });
    return pool;
  }

  myPool(tenantId: string, source: DataSourceConfig, timeoutMs: number): Promise<{ pool: mysql.Pool; entry: MyEntry }> {
    const slot = `${tenantId}/${source.id}`;
    const key = ConnectorPools.key(tenantId, source);
    const cur = this.my.get(slot);
    this.sweepIdle();
    if (cur?.key === key) {
      cur.lastUsed = Date.now();
      return cur.pool.then((pool) => ({ pool, entry: cur }));
    }
    if (cur) void cur.pool.then((p) => p.end()).catch(() => undefined);
    const c = source.connection;
    const port = c.port ?? 3306;
    const pool = this.destination(c.host!, port).then((dest) =>
      mysql.createPool({
        // The name stays for TLS; the socket goes to the address the egress policy checked.
        host: dest.servername ?? dest.address,
        port,
        stream: () => netConnect(port, dest.address),
        database: c.database,
        user: c.username,
        password: c.password,
        ssl: c.ssl ? {} : undefined,
        connectionLimit: 10,
        connectTimeout: timeoutMs,
        // maxIdle = connectionLimit turns off mysql2's forever-rearming idle timer, which would keep
        // a stopping worker alive; idle pools are ended by sweepIdle instead.
        maxIdle: 10,
        // Values come back as JS strings/numbers; dates as strings so templates print them as stored.
        dateStrings: true,
        // One statement per call, whatever the text says.
        multipleStatements: false,
      }),
    );
    const entry: MyEntry = { key, pool, lastUsed: Date.now() };
    pool.catch(() => this.my.get(slot) === entry && this.my.delete(slot));
    this.my.set(slot, entry);
    return pool.then((p) => ({ pool: p, entry }));
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.all([...this.pg.values()].map((e) => e.pool.then((p) => p.end()).catch(() => undefined)));
    await Promise.all([...this.my.values()].map((e) => e.pool.then((p) => p.end()).catch(() => undefined)));
    this.pg.clear();
    this.my.clear();
  }
}

/** Runs one named query or endpoint with the given parameters. */
export async function runQuery(
  pools: ConnectorPools,
  tenantId: string,
  source: DataSourceConfig,
  query: string,
  params: Record<string, string>,
  order: string[],
  opts: RunOptions,
): Promise<Record<string, unknown>[]> {
  const secrets = secretValues(splitSecrets(source).secrets);
  try {
    switch (source.type) {
      case 'postgresql':
        return await runPg(pools, tenantId, source, sqlText(source, query), positional(source, query, params, order), opts);
      case 'mysql':
        return await runMysql(pools, tenantId, source, sqlText(source, query), positional(source, query, params, order), opts);
      case 'rest_api':
        return await runRest(source, query, params, opts);
      case 'graphql':
        return await runGraphql(source, query, params, opts);
    }
  } catch (err) {
    const refused = findEgressRefusal(err);
    if (refused) throw egressFailure(refused);
    if (err instanceof LookupError) throw new LookupError(err.kind, scrub(err.message, secrets));
    throw new LookupError('unavailable', scrub(describe(err), secrets));
  }
}

/** Checks that a source answers: `SELECT 1` for SQL, a request to the base URL for REST, `{ __typename }` for GraphQL. */
export async function probe(pools: ConnectorPools, tenantId: string, source: DataSourceConfig, opts: RunOptions): Promise<void> {
  const secrets = secretValues(splitSecrets(source).secrets);
  try {
    if (source.type === 'postgresql') await runPg(pools, tenantId, source, 'SELECT 1 AS ok', [], opts);
    else if (source.type === 'mysql') await runMysql(pools, tenantId, source, 'SELECT 1 AS ok', [], opts);
    else if (source.type === 'graphql') await graphqlRequest(source, '{ __typename }', {}, opts);
    else {
      const res = await egressFetch(source.connection.base_url!, { headers: headers(source), signal: signalFor(opts) });
      await res.body?.cancel();
      if (res.status >= 500) throw new LookupError('unavailable', `HTTP ${res.status} from the source`);
    }
  } catch (err) {
    const refused = findEgressRefusal(err);
    if (refused) throw egressFailure(refused);
    throw new LookupError(err instanceof LookupError ? err.kind : 'unavailable', scrub(describe(err), secrets));
  }
}

/** SQLSTATE classes (the first two characters) as PostgreSQL names them. */
const SQLSTATE_CLASSES: Record<string, string> = {
  '08': 'connection exception',
  '22': 'data exception',
  '25': 'invalid transaction state',
  '28': 'invalid authorization',
  '3D': 'invalid catalog name',
  '42': 'syntax error or access rule violation',
  '53': 'insufficient resources',
  '57': 'operator intervention',
  P0: 'PL/pgSQL error',
  XX: 'internal error',
};

const sqlStateMessage = (code: string) => `SQLSTATE ${code} (${SQLSTATE_CLASSES[code.slice(0, 2)] ?? 'database error'}) from the source`;

/** A MySQL/MariaDB server error: its number and symbolic name, never its text. */
function mysqlServerError(err: unknown): string | undefined {
  const { errno, sqlState, code } = err as { errno?: number; sqlState?: string; code?: string };
  if (typeof errno !== 'number' || typeof sqlState !== 'string') return undefined;
  return `MySQL error ${errno}${code && /^ER_\w+$/.test(code) ? ` (${code})` : ''} from the source`;
}

/** Only a driver's or the network's own wording is kept; a database server's message is replaced by its code. */
function describe(err: unknown): string {
  if (err instanceof pg.DatabaseError) return sqlStateMessage(err.code ?? 'unknown');
  const fromMysql = mysqlServerError(err);
  if (fromMysql) return fromMysql;
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'the source did not answer in time';
    const code = (err as { code?: string }).code;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return `${err.message}: ${cause.code}`;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function sqlText(source: DataSourceConfig, query: string): string {
  const text = source.queries?.[query];
  if (text === undefined) throw new LookupError('bad_request', `data source "${source.id}" has no query "${query}"`);
  return text;
}

/** SQL parameters in $n order, from the names in `order`. */
function positional(source: DataSourceConfig, query: string, params: Record<string, string>, order: string[]): string[] {
  const count = Math.max(0, ...sqlPlaceholders(source.queries![query], source.type === 'mysql' ? 'mysql' : 'postgresql'));
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = order[i];
    const value = name === undefined ? undefined : params[name];
    if (value === undefined)
      throw new LookupError('bad_request', `missing parameter $${i + 1}${name ? ` (${name})` : ''} for query "${query}"`);
    values.push(value);
  }
  return values;
}

const signalFor = (opts: RunOptions): AbortSignal =>
  opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs);

async function runPg(pools: ConnectorPools, tenantId: string, source: DataSourceConfig, text: string, values: string[], opts: RunOptions) {
  const pool = await pools.pgPool(tenantId, source, opts.timeoutMs);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN READ ONLY');
    // SET LOCAL takes no bind parameters; the value is an integer we computed.
    await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(opts.timeoutMs))}`);
    // The guard reads strings as the server does only with standard strings (backslash is literal outside E'').
    await client.query('SET LOCAL standard_conforming_strings = on');
    // A named statement always goes over the extended protocol (Parse/Bind/Execute), even without
    // parameters, so the text is one statement; the simple protocol would run `SELECT 1; COMMIT; …`.
    const result = await client.query({ name: `q_${createHash('sha256').update(text).digest('hex').slice(0, 40)}`, text, values });
    await client.query('COMMIT');
    return result.rows.slice(0, MAX_ROWS) as Record<string, unknown>[];
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    const code = (err as { code?: string }).code ?? '';
    // 22xxx data exceptions (a non-numeric id for an integer column), 25xxx (a write in the
    // read-only transaction) and 42xxx (syntax, missing table) cannot succeed on retry.
    if (/^(22|25|42)/.test(code)) throw new LookupError('bad_request', sqlStateMessage(code));
    if (code === '57014') throw new LookupError('unavailable', 'the query exceeded its statement timeout');
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * mysql2's pool waits for a free connection without limit (it has no acquire timeout); this
 * gives up after `timeoutMs`, as pg's connectionTimeoutMillis does, and hands back a connection
 * that arrives too late.
 */
export async function acquireMysql(pool: mysql.Pool, timeoutMs: number): Promise<mysql.PoolConnection> {
  const pending = pool.getConnection();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new LookupError('unavailable', 'no connection to the source was free in time')), timeoutMs);
  });
  try {
    return await Promise.race([pending, timeout]);
  } catch (err) {
    pending.then(
      (late) => late.release(),
      () => undefined,
    );
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function runMysql(
  pools: ConnectorPools,
  tenantId: string,
  source: DataSourceConfig,
  text: string,
  values: string[],
  opts: RunOptions,
) {
  const { pool, entry } = await pools.myPool(tenantId, source, opts.timeoutMs);
  // $n placeholders become ?, with the values repeated in the order they appear.
  const order = sqlPlaceholders(text, 'mysql');
  const conn = await acquireMysql(pool, opts.timeoutMs);
  // As with pg's allowExitOnIdle: a pooled socket alone must not keep the process running.
  (conn.connection as unknown as { stream?: { unref?: () => void } }).stream?.unref?.();
  try {
    if (!entry.flavour) {
      const [rows] = await conn.query('SELECT VERSION() AS v');
      entry.flavour = /mariadb/i.test(String((rows as { v: string }[])[0]?.v)) ? 'mariadb' : 'mysql';
    }
    if (entry.flavour === 'mariadb') await conn.query(`SET SESSION max_statement_time = ${(opts.timeoutMs / 1000).toFixed(3)}`);
    else await conn.query(`SET SESSION max_execution_time = ${Math.floor(opts.timeoutMs)}`);
    await conn.query('START TRANSACTION READ ONLY');
    try {
      const [rows] = await conn.execute(
        { sql: mysqlText(text), timeout: opts.timeoutMs },
        order.map((n) => values[n - 1]),
      );
      await conn.query('COMMIT');
      return (rows as Record<string, unknown>[]).slice(0, MAX_ROWS).map((r) => ({ ...r }));
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => undefined);
      const errno = (err as { errno?: number }).errno ?? 0;
      if (errno === 1969 || errno === 3024) throw new LookupError('unavailable', 'the query exceeded its statement timeout');
      // 1054 unknown column, 1064 syntax, 1146 no table, 1792 write in read-only transaction: retrying cannot help.
      if ([1054, 1064, 1146, 1792, 1210].includes(errno))
        throw new LookupError('bad_request', mysqlServerError(err) ?? `MySQL error ${errno} from the source`);
      throw err;
    }
  } finally {
    conn.release();
  }
}

function headers(source: DataSourceConfig): Record<string, string> {
  const c = source.connection;
  const out: Record<string, string> = { accept: 'application/json' };
  for (const [name, value] of Object.entries(c.headers ?? {})) {
    out[name] = value.replace(/\{(password|api_key|token)\}/g, (_m, f: 'password' | 'api_key' | 'token') => c[f] ?? '');
  }
  return out;
}

async function readJson(res: CappableResponse, opts: RunOptions): Promise<unknown> {
  let text: string;
  try {
    text = (await readCapped(res, { maxBytes: MAX_RESPONSE_BYTES, timeoutMs: opts.timeoutMs })).toString('utf8');
  } catch (err) {
    if (err instanceof ResponseTooLargeError) throw new LookupError('bad_request', "the source's response is too large");
    if (err instanceof ResponseTimeoutError) throw new LookupError('unavailable', 'the source did not answer in time');
    throw err;
  }
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    throw new LookupError('bad_request', 'the source did not answer with JSON');
  }
}

function statusError(status: number): LookupError {
  // 408 and 429 are the source asking us to come back later.
  if (status >= 500 || status === 408 || status === 429) return new LookupError('unavailable', `HTTP ${status} from the source`);
  return new LookupError('bad_request', `HTTP ${status} from the source`);
}

function asRows(value: unknown): Record<string, unknown>[] {
  const list = Array.isArray(value) ? value : value === null || value === undefined ? [] : [value];
  return list
    .slice(0, MAX_ROWS)
    .map((v) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v }));
}

async function runRest(source: DataSourceConfig, query: string, params: Record<string, string>, opts: RunOptions) {
  const ep = source.endpoints?.[query];
  if (ep === undefined) throw new LookupError('bad_request', `data source "${source.id}" has no endpoint "${query}"`);
  const { path, method } = typeof ep === 'string' ? { path: ep, method: 'GET' as const } : ep;
  for (const p of placeholders(path)) {
    if (params[p] === undefined) throw new LookupError('bad_request', `missing parameter "${p}" for endpoint "${query}"`);
  }
  const filled = path.replace(/\{([A-Za-z_]\w*)\}/g, (_m, p: string) => encodeURIComponent(params[p]));
  const url = source.connection.base_url!.replace(/\/+$/, '') + filled;
  const res = await egressFetch(url, {
    method,
    headers: { ...headers(source), ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    body: method === 'POST' ? JSON.stringify(params) : undefined,
    signal: signalFor(opts),
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(res.status);
  }
  return asRows(await readJson(res, opts));
}

async function graphqlRequest(source: DataSourceConfig, document: string, variables: Record<string, string>, opts: RunOptions) {
  const res = await egressFetch(source.connection.url!, {
    method: 'POST',
    headers: { ...headers(source), 'content-type': 'application/json' },
    body: JSON.stringify({ query: document, variables }),
    signal: signalFor(opts),
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw statusError(res.status);
  }
  const body = (await readJson(res, opts)) as {
    data?: Record<string, unknown> | null;
    errors?: { extensions?: { code?: unknown } }[];
  } | null;
  if (body?.errors?.length && !body.data) {
    // The messages can echo a variable's value; only well-formed error codes are kept.
    const codes = [...new Set(body.errors.map((e) => e.extensions?.code))].filter(
      (c): c is string => typeof c === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(c),
    );
    throw new LookupError('bad_request', `GraphQL error${codes.length ? ` ${codes.slice(0, 5).join(', ')}` : ''} from the source`);
  }
  return body?.data ?? {};
}

async function runGraphql(source: DataSourceConfig, query: string, params: Record<string, string>, opts: RunOptions) {
  const doc = source.queries?.[query];
  if (doc === undefined) throw new LookupError('bad_request', `data source "${source.id}" has no query "${query}"`);
  const declared = graphqlVariables(doc);
  const variables = Object.fromEntries(Object.entries(params).filter(([k]) => declared.includes(k)));
  const data = await graphqlRequest(source, doc, variables, opts);
  // `{ product: {...} }` → the product's fields; several top-level fields stay as one row.
  const keys = Object.keys(data);
  return asRows(keys.length === 1 ? data[keys[0]] : data);
}
