import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import * as schema from './schema.js';

export type Db = NodePgDatabase<typeof schema> & { $client: pg.Pool };

/** How long a caller waits for a free connection before giving up (the API answers 503 DATABASE_BUSY). */
export const POOL_ACQUIRE_TIMEOUT_MS = 5_000;

export function createPool(url: string, max = 10, acquireTimeoutMs = POOL_ACQUIRE_TIMEOUT_MS): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000, connectionTimeoutMillis: acquireTimeoutMs });
  // An idle client losing its server must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  return pool;
}

const openTransaction = new AsyncLocalStorage<true>();

/** Whether the caller runs inside a `db.transaction` callback (of any Db made here). */
export const inTransaction = (): boolean => openTransaction.getStore() === true;

export function createDb(pool: pg.Pool): Db {
  const db = drizzle(pool, { schema }) as Db;
  // Marks the callback's async context, so code that must never run in a transaction (a
  // provider call: core/messaging/outbound.ts) can refuse to.
  const begin = db.transaction.bind(db);
  db.transaction = ((callback, config) => openTransaction.run(true, () => begin(callback, config))) as Db['transaction'];
  return db;
}
