import { getTableColumns, getTableName, is } from 'drizzle-orm';
import { PgTable, type PgColumn } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import * as schema from '../db/schema.js';
import { messageMedia } from '../db/schema.js';
import type { EncBytesColumn, EncColumn, Keyring } from '../platform/crypto.js';

export interface ReencryptResult {
  /** `table.column` → values rewritten as v2 under the primary key, bound to their row. */
  columns: Record<string, number>;
  /** Values that did not open where they are (altered, copied from another row, or under a key no longer listed); left as they were. */
  failed: number;
  /** `*_enc` columns in the database but not in the drizzle schema: nothing says how to bind them, so they are left alone. */
  unknown: string[];
}

/** How one encrypted column of the database is found stale and rewritten. */
interface Target {
  table: string;
  column: string;
  /** Whether the table has tenant_id; rows of a table without one are bound to no tenant. */
  tenantScoped: boolean;
  /** bytea values keep their key label in this column; a text value carries its own. */
  label?: string;
  /** Values per batch: media content is large, so its batches are short. */
  batch: number;
  /** The value bound to its row under the primary key; throws if it does not open where it is. */
  rewrite(keyring: Keyring, tenantId: string | null, row: Stored): Stored;
}

interface Stored {
  value: string | Buffer;
  /** The text value itself, or a bytea value's label. */
  tag: string | null;
}

/** bytea columns and the column that holds each value's key label. */
const BYTES_LABELS = new Map<EncBytesColumn, PgColumn>([[messageMedia.contentEnc, messageMedia.contentKey]]);

/** The encrypted columns of the drizzle schema, by `table.column`. */
function encryptedColumns(batchSize: number): Map<string, Target> {
  const found = new Map<string, Target>();
  for (const table of Object.values(schema)) {
    if (!is(table, PgTable)) continue;
    const columns = Object.values(getTableColumns(table));
    const where = { table: getTableName(table), tenantScoped: columns.some((c) => c.name === 'tenant_id') };
    for (const c of columns) {
      if (!c.name.endsWith('_enc')) continue;
      const key = `${where.table}.${c.name}`;
      if (c.dataType === 'string') {
        const column = c as EncColumn;
        found.set(key, {
          ...where,
          column: c.name,
          batch: batchSize,
          rewrite(keyring, tenantId, row) {
            const at = { tenantId, column };
            const value = keyring.encrypt(keyring.decrypt(row.value as string, at), at);
            return { value, tag: value };
          },
        });
      }
      const label = BYTES_LABELS.get(c as EncBytesColumn);
      if (label) {
        const column = c as EncBytesColumn;
        found.set(key, {
          ...where,
          column: c.name,
          label: label.name,
          batch: Math.min(batchSize, 20),
          rewrite(keyring, tenantId, row) {
            const at = { tenantId, column };
            if (row.tag === null) throw new Error(`${key}: a value without its key label`);
            const sealed = keyring.encryptColumnBytes(keyring.decryptColumnBytes(row.tag, row.value as Buffer, at), at);
            return { value: sealed.data, tag: sealed.label };
          },
        });
      }
    }
  }
  return found;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Every `*_enc` column of the database, found in the catalog so none is missed. */
async function catalogColumns(pool: pg.Pool): Promise<{ table_name: string; column_name: string; data_type: string }[]> {
  const { rows } = await pool.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND c.column_name LIKE '%\\_enc' AND c.data_type IN ('text', 'bytea')
      ORDER BY 1, 2`,
  );
  return rows;
}

/** SQL: the row's value is set and not yet current (`current` is the placeholder of `keyring.currentVersion()`). */
function staleCondition(t: Target, current: string): string {
  const c = ident(t.column);
  return t.label
    ? `${c} IS NOT NULL AND ${ident(t.label)} IS DISTINCT FROM ${current}::text`
    : `${c} IS NOT NULL AND NOT starts_with(${c}, ${current}::text || '.')`;
}

/** One walk over a column in ctid order: rewrites what opens, counts what does not. */
async function walkColumn(pool: pg.Pool, keyring: Keyring, target: Target): Promise<{ rewritten: number; failed: number }> {
  const t = ident(target.table);
  const c = ident(target.column);
  const tag = target.label ? ident(target.label) : c;
  const tenant = target.tenantScoped ? 'tenant_id' : 'NULL::text';
  const valueType = target.label ? 'bytea' : 'text';
  let after = '(0,0)';
  let rewritten = 0;
  let failed = 0;
  for (;;) {
    const { rows } = await pool.query<Stored & { ctid: string; tenant_id: string | null }>(
      `SELECT ctid::text AS ctid, ${c} AS value, ${tag} AS tag, ${tenant} AS tenant_id FROM ${t}
        WHERE ctid > $1::tid AND ${staleCondition(target, '$2')}
        ORDER BY ctid LIMIT $3`,
      [after, keyring.currentVersion(), target.batch],
    );
    if (rows.length === 0) return { rewritten, failed };
    after = rows[rows.length - 1].ctid;
    const batch = { ctids: [] as string[], olds: [] as Stored[], news: [] as Stored[], tenants: [] as (string | null)[] };
    for (const row of rows) {
      try {
        batch.news.push(target.rewrite(keyring, row.tenant_id, row));
        batch.ctids.push(row.ctid);
        batch.olds.push(row);
        batch.tenants.push(row.tenant_id);
      } catch {
        failed++;
      }
    }
    if (batch.ctids.length === 0) continue;
    // Compare-and-set: the row still holds the value (and label, and tenant) that was read.
    const res = await pool.query(
      `UPDATE ${t} AS x SET ${c} = v.new${target.label ? `, ${tag} = v.new_tag` : ''}
         FROM unnest($1::tid[], $2::${valueType}[], $3::${valueType}[], $4::text[], $5::text[], $6::text[])
              AS v(ctid, old, new, old_tag, new_tag, tenant)
        WHERE x.ctid = v.ctid AND x.${c} = v.old AND x.${tag} IS NOT DISTINCT FROM v.old_tag
          ${target.tenantScoped ? 'AND x.tenant_id IS NOT DISTINCT FROM v.tenant' : ''}`,
      [
        batch.ctids,
        batch.olds.map((o) => o.value),
        batch.news.map((n) => n.value),
        batch.olds.map((o) => o.tag),
        batch.news.map((n) => n.tag),
        batch.tenants,
      ],
    );
    rewritten += res.rowCount ?? 0;
  }
}

/**
 * Rewrites every `*_enc` value (text, and bytea with its key label) that is not yet v2 under the
 * keyring's primary key: v1 values (unbound) become v2 bound to their own row's tenant_id, table
 * and column, and values under an older key move to the primary one, so that key can leave the keyring. It runs online: short
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
  const known = encryptedColumns(opts.batchSize ?? 500);
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
      pass = await walkColumn(pool, keyring, target);
      rewritten += pass.rewritten;
    } while (pass.rewritten > 0 && (await countStaleIn(pool, keyring, target)) > pass.failed);
    result.columns[`${table}.${column}`] = rewritten;
    result.failed += pass.failed;
    const binding = target.tenantScoped ? "bound to each row's tenant_id" : 'no tenant_id: bound to no tenant';
    opts.log?.(
      `${table}.${column}: ${rewritten} re-encrypted (${binding})${pass.failed ? `, ${pass.failed} did not open and were left` : ''}`,
    );
  }
  return result;
}

async function countStaleIn(pool: pg.Pool, keyring: Keyring, target: Target): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${ident(target.table)} WHERE ${staleCondition(target, '$1')}`,
    [keyring.currentVersion()],
  );
  return rows[0].n;
}

/** How many `*_enc` values are not yet v2 under the primary key (0 once a run is complete). */
export async function countStale(pool: pg.Pool, keyring: Keyring): Promise<number> {
  const known = encryptedColumns(0);
  let stale = 0;
  for (const { table_name: table, column_name: column } of await catalogColumns(pool)) {
    const target = known.get(`${table}.${column}`);
    // A column outside the schema is never rewritten: every value in it counts as stale.
    if (target) stale += await countStaleIn(pool, keyring, target);
    else stale += (await pool.query<{ n: number }>(`SELECT count(${ident(column)})::int AS n FROM ${ident(table)}`)).rows[0].n;
  }
  return stale;
}
