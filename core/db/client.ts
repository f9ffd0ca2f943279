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

export function createDb(pool: pg.Pool): Db {
  return drizzle(pool, { schema }) as Db;
}
