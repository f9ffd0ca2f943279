import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { acquireMysql, LookupError } from '../core/data-engine/connectors.js';
import { MYSQL } from './helpers/tenant-crm.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['api', 'activities', 'core', 'scripts', 'worker', 'workflows'];

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(root, dir), { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

/** Issue 17: no pool may leave a caller waiting for a connection without limit. */
describe('every connection pool has an acquire timeout', () => {
  it('each pg.Pool in the code sets connectionTimeoutMillis; each mysql pool is acquired through acquireMysql', async () => {
    const files = (await Promise.all(SOURCE_DIRS.map(sources))).flat();
    let pgPools = 0;
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      // The options object: on one line, or up to the line that closes it.
      for (const m of text.matchAll(/new pg\.Pool\((?:\{[^\n]*\}\)|\{[\s\S]*?\n\s*\}\))/g)) {
        pgPools++;
        assert.match(m[0], /connectionTimeoutMillis/, `${path.relative(root, file)}: a pg.Pool without connectionTimeoutMillis`);
      }
      if (!file.endsWith(path.join('core', 'data-engine', 'connectors.ts'))) {
        assert.doesNotMatch(text, /\.getConnection\(\)/, `${path.relative(root, file)}: acquire mysql connections with acquireMysql`);
      }
    }
    assert.ok(pgPools >= 2, 'the scan found the pools (core/db/client.ts, the data engine)');
    const connectors = await readFile(path.join(root, 'core/data-engine/connectors.ts'), 'utf8');
    assert.equal([...connectors.matchAll(/\.getConnection\(\)/g)].length, 1, 'only acquireMysql calls getConnection');
  });

  it("a tenant's MySQL pool with every connection taken gives up after the timeout instead of waiting", async (t) => {
    const probe = await mysql.createConnection({ ...MYSQL, connectTimeout: 2000 }).catch((err: Error) => err);
    if (probe instanceof Error) return t.skip(`no MySQL/MariaDB on ${MYSQL.host}:${MYSQL.port}`);
    await probe.end();
    const pool = mysql.createPool({ ...MYSQL, connectionLimit: 1 });
    try {
      const held = await acquireMysql(pool, 2_000);
      const started = performance.now();
      await assert.rejects(acquireMysql(pool, 300), (err: LookupError) => {
        assert.ok(err instanceof LookupError);
        assert.equal(err.kind, 'unavailable');
        assert.match(err.message, /no connection to the source was free in time/);
        return true;
      });
      const waited = performance.now() - started;
      assert.ok(waited >= 250 && waited < 2_000, `gave up after ${waited.toFixed(0)} ms`);
      held.release();
      // The connection the timed-out caller would have got went back to the pool: the next caller gets it.
      const next = await acquireMysql(pool, 2_000);
      const [rows] = await next.query('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
      next.release();
    } finally {
      await pool.end();
    }
  });
});
