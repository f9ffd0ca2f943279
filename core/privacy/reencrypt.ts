import { getTableColumns, getTableName, is } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import * as schema from '../db/schema.js';
import type { EncColumn, Keyring } from '../platform/crypto.js';

export interface ReencryptResult {
  /** `table.column` → values rewritten as v2 under the primary key, bound to their row. */
  columns: Record<string, number>;
  /** Values that did not open where they are (altered, copied from another row, or under a key no longer listed); left as they were. */
  failed: number;
  /** `*_enc` columns in the database but not in the drizzle schema: nothing says how to bind them, so they are left alone. */
  unknown: string[];
}

interface Target {
  column: EncColumn;
  /** Whether the table has tenant_id; rows of a table without one are bound to no tenant. */
  tenantScoped: boolean;
}

/** The encrypted text columns of the drizzle schema, by `table.column`. */
function encryptedColumns(): Map<string, Target> {
  const found = new Map<string, Target>();
  for (const table of Object.values(schema)) {
    if (!is(table, PgTable)) continue;
    const columns = Object.values(getTableColumns(table));
    const tenantScoped = columns.some((c) => c.name === 'tenant_id');
    for (const c of columns) {
      if (c.name.endsWith('_enc') && c.dataType === 'string') {
        found.set(`${getTableName(table)}.${c.name}`, { column: c as EncColumn, tenantScoped });
      }
    }
  }
  return found;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Every `*_enc` text column of the database, found in the catalog so none is missed. */
async function catalogColumns(pool: pg.Pool): Promise<{ table_name: string; column_name: string }[]> {
  const { rows } = await pool.query<{ table_name: string; column_name: string }>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND c.column_name LIKE '%\\_enc' AND c.data_type = 'text'
      ORDER BY 1, 2`,
  );
  return rows;
}

/** One walk over a column in ctid order: rewrites what opens, counts what does not. */
async function walkColumn(
  pool: pg.Pool,
  keyring: Keyring,
  where: { table: string; column: string; target: Target },
  batchSize: number,
): Promise<{ rewritten: number; failed: number }> {
  const { target } = where;
  const t = ident(where.table);
  const c = ident(where.column);
  const tenant = target.tenantScoped ? 'tenant_id' : 'NULL::text';
  let after = '(0,0)';
  let rewritten = 0;
  let failed = 0;
  for (;;) {
    const { rows } = await pool.query<{ ctid: string; value: string; tenant_id: string | null }>(
      `SELECT ctid::text AS ctid, ${c} AS value, ${tenant} AS tenant_id FROM ${t}
        WHERE ctid > $1::tid AND ${c} IS NOT NULL AND NOT starts_with(${c}, $2)
        ORDER BY ctid LIMIT $3`,
      [after, keyring.currentPrefix(), batchSize],
    );
    if (rows.length === 0) return { rewritten, failed };
    after = rows[rows.length - 1].ctid;
    const ctids: string[] = [];
    const olds: string[] = [];
    const news: string[] = [];
    const tenants: (string | null)[] = [];
    for (const row of rows) {
      const at = { tenantId: row.tenant_id, column: target.column };
      try {
        news.push(keyring.encrypt(keyring.decrypt(row.value, at), at));
        ctids.push(row.ctid);
        olds.push(row.value);
        tenants.push(row.tenant_id);
      } catch {
        failed++;
      }
    }
    if (ctids.length) {
      const res = await pool.query(
        `UPDATE ${t} AS x SET ${c} = v.new
           FROM unnest($1::tid[], $2::text[], $3::text[], $4::text[]) AS v(ctid, old, new, tenant)
          WHERE x.ctid = v.ctid AND x.${c} = v.old${target.tenantScoped ? ' AND x.tenant_id IS NOT DISTINCT FROM v.tenant' : ''}`,
        [ctids, olds, news, tenants],
      );
      rewritten += res.rowCount ?? 0;
    }
  }
}

/**
 * Rewrites every `*_enc` text value that is not yet v2 under the keyring's primary key: v1 values
 * (unbound) become v2 bound to their own row's tenant_id, table and column, and values under an
 * older key move to the primary one, so that key can leave the keyring. It runs online: short
 * batches walk each table in physical order (ctid), and a row is updated only if its value and
 * tenant are still the ones read, so a concurrent write is never overwritten. A row that a
 * concurrent update moved (a new ctid, possibly behind the walk) is taken by another walk, repeated
 * while the last one made progress. A value that does not open where it is (altered, or copied from
 * another row) is counted as failed and left alone. Running it again changes nothing.
 */
export async function reencryptAll(
  pool: pg.Pool,
  keyring: Keyring,
  opts: { batchSize?: number; log?: (line: string) => void } = {},
): Promise<ReencryptResult> {
  const batchSize = opts.batchSize ?? 500;
  const known = encryptedColumns();
  const result: ReencryptResult = { columns: {}, failed: 0, unknown: [] };
  for (const { table_name: table, column_name: column } of await catalogColumns(pool)) {
    const target = known.get(`${table}.${column}`);
    if (!target) {
      result.unknown.push(`${table}.${column}`);
      opts.log?.(`${table}.${column}: not in the drizzle schema, left as it is`);
      continue;
    }
    let rewritten = 0;
    let pass: { rewritten: number; failed: number };
    do {
      pass = await walkColumn(pool, keyring, { table, column, target }, batchSize);
      rewritten += pass.rewritten;
    } while (pass.rewritten > 0 && (await countStaleIn(pool, keyring, table, column)) > pass.failed);
    result.columns[`${table}.${column}`] = rewritten;
    result.failed += pass.failed;
    const binding = target.tenantScoped ? "bound to each row's tenant_id" : 'no tenant_id: bound to no tenant';
    opts.log?.(
      `${table}.${column}: ${rewritten} re-encrypted (${binding})${pass.failed ? `, ${pass.failed} did not open and were left` : ''}`,
    );
  }
  return result;
}

async function countStaleIn(pool: pg.Pool, keyring: Keyring, table: string, column: string): Promise<number> {
  const c = ident(column);
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${ident(table)} WHERE ${c} IS NOT NULL AND NOT starts_with(${c}, $1)`,
    [keyring.currentPrefix()],
  );
  return rows[0].n;
}

/** How many `*_enc` values are not yet v2 under the primary key (0 once a run is complete). */
export async function countStale(pool: pg.Pool, keyring: Keyring): Promise<number> {
  let stale = 0;
  for (const { table_name, column_name } of await catalogColumns(pool)) stale += await countStaleIn(pool, keyring, table_name, column_name);
  return stale;
}
