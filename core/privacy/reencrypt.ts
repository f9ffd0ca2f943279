import type pg from 'pg';
import type { Keyring } from '../platform/crypto.js';

export interface ReencryptResult {
  /** `table.column` → values rewritten with the primary key. */
  columns: Record<string, number>;
  /** Values no key in the keyring could open; left as they were. */
  failed: number;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Re-encrypts every `*_enc` text column of every table with the keyring's primary key, so an
 * old key can leave the keyring. It runs online: short batches walk each table in physical
 * order (ctid), and each row is updated only if its value is still the one read, so a
 * concurrent write is never overwritten (such a row already carries the primary key, or the
 * next run takes it). Columns are found in the catalog, so tables added later are covered.
 */
export async function reencryptAll(
  pool: pg.Pool,
  keyring: Keyring,
  opts: { batchSize?: number; log?: (line: string) => void } = {},
): Promise<ReencryptResult> {
  const batchSize = opts.batchSize ?? 500;
  const current = `v1.${keyring.primary.id}.%`;
  const { rows: cols } = await pool.query<{ table_name: string; column_name: string }>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
        AND c.column_name LIKE '%\\_enc' AND c.data_type = 'text'
      ORDER BY 1, 2`,
  );
  const result: ReencryptResult = { columns: {}, failed: 0 };
  for (const { table_name: table, column_name: column } of cols) {
    const t = ident(table);
    const c = ident(column);
    let after = '(0,0)';
    let rewritten = 0;
    for (;;) {
      const { rows } = await pool.query<{ ctid: string; value: string }>(
        `SELECT ctid::text AS ctid, ${c} AS value FROM ${t}
          WHERE ctid > $1::tid AND ${c} IS NOT NULL AND ${c} NOT LIKE $2
          ORDER BY ctid LIMIT $3`,
        [after, current, batchSize],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1].ctid;
      const ctids: string[] = [];
      const olds: string[] = [];
      const news: string[] = [];
      for (const row of rows) {
        try {
          news.push(keyring.encrypt(keyring.decrypt(row.value)));
          ctids.push(row.ctid);
          olds.push(row.value);
        } catch {
          result.failed++;
        }
      }
      if (ctids.length) {
        const res = await pool.query(
          `UPDATE ${t} AS x SET ${c} = v.new
             FROM unnest($1::tid[], $2::text[], $3::text[]) AS v(ctid, old, new)
            WHERE x.ctid = v.ctid AND x.${c} = v.old`,
          [ctids, olds, news],
        );
        rewritten += res.rowCount ?? 0;
      }
    }
    result.columns[`${table}.${column}`] = rewritten;
    opts.log?.(`${table}.${column}: ${rewritten} re-encrypted`);
  }
  return result;
}

/** How many `*_enc` values are not yet under the primary key (0 once a rotation is complete). */
export async function countStale(pool: pg.Pool, keyring: Keyring): Promise<number> {
  const { rows: cols } = await pool.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND column_name LIKE '%\\_enc' AND data_type = 'text'`,
  );
  let stale = 0;
  for (const { table_name, column_name } of cols) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${ident(table_name)} WHERE ${ident(column_name)} IS NOT NULL AND ${ident(column_name)} NOT LIKE $1`,
      [`v1.${keyring.primary.id}.%`],
    );
    stale += rows[0].n;
  }
  return stale;
}
