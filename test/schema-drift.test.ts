import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import pg from 'pg';
import * as schema from '../core/db/schema.js';
import { migrate } from '../core/db/migrate.js';
import { createTestDatabase } from './helpers/harness.js';

/** Columns that exist only in SQL on purpose: generated or optional-extension columns that drizzle never reads. */
const SQL_ONLY_COLUMNS = new Set(['knowledge_chunks.tsv', 'knowledge_chunks.embedding_vec', 'knowledge_entries.tsv']);
/** Tables that only the migration runner knows. */
const SQL_ONLY_TABLES = new Set(['schema_migrations']);

/** format_type() spells some types differently from drizzle's getSQLType(). */
function normalise(type: string): string {
  return type
    .toLowerCase()
    .replace(/^timestamp(\(\d+\))? with time zone$/, 'timestamptz')
    .replace(/^timestamptz\(\d+\)$/, 'timestamptz')
    .replace(/^character varying/, 'varchar')
    .replace(/^double precision/, 'float8')
    .replace(/^serial$/, 'integer')
    .replace(/^bigserial$/, 'bigint')
    .replace(/^smallint$/, 'int2');
}

type Column = { type: string; notNull: boolean };

describe('the drizzle schema and the SQL migrations agree', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let live: Map<string, Map<string, Column>>;

  before(async () => {
    db = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await migrate(pool);
      const { rows } = await pool.query<{ table_name: string; column_name: string; type: string; not_null: boolean }>(`
        SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped`);
      live = new Map();
      for (const r of rows) {
        if (!live.has(r.table_name)) live.set(r.table_name, new Map());
        live.get(r.table_name)!.set(r.column_name, { type: normalise(r.type), notNull: r.not_null });
      }
    } finally {
      await pool.end();
    }
  });
  after(() => db?.drop());

  const tables: PgTable[] = (Object.values(schema) as unknown[]).filter((v): v is PgTable => v instanceof PgTable);

  it('has the same tables', () => {
    const declared = new Set(tables.map((t) => getTableConfig(t).name));
    const missingInSql = [...declared].filter((t) => !live.has(t));
    const missingInDrizzle = [...live.keys()].filter((t) => !declared.has(t) && !SQL_ONLY_TABLES.has(t));
    assert.deepEqual({ missingInSql, missingInDrizzle }, { missingInSql: [], missingInDrizzle: [] });
  });

  it('has the same columns, types and nullability', () => {
    const problems: string[] = [];
    for (const table of tables) {
      const config = getTableConfig(table);
      const sqlColumns = live.get(config.name);
      if (!sqlColumns) continue;
      const declared = new Set<string>();
      for (const column of config.columns) {
        declared.add(column.name);
        const found = sqlColumns.get(column.name);
        const where = `${config.name}.${column.name}`;
        if (!found) {
          problems.push(`${where}: in drizzle, not in SQL`);
          continue;
        }
        const type = normalise(column.getSQLType());
        if (type !== found.type) problems.push(`${where}: drizzle ${type}, SQL ${found.type}`);
        if (column.notNull !== found.notNull) problems.push(`${where}: drizzle notNull=${column.notNull}, SQL notNull=${found.notNull}`);
      }
      for (const name of sqlColumns.keys()) {
        if (!declared.has(name) && !SQL_ONLY_COLUMNS.has(`${config.name}.${name}`))
          problems.push(`${config.name}.${name}: in SQL, not in drizzle`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
