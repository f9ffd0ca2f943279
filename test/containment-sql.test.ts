import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkSql } from '../core/data-engine/config.js';
import { ConnectorPools, runQuery } from '../core/data-engine/connectors.js';
import { createHarness, type Harness } from './helpers/harness.js';
import { createPgCrm, type Crm } from './helpers/tenant-crm.js';

/** A hostile tenant's SQL: escapes of the one-read-only-SELECT rule, at PUT and on the wire. */
describe('containment: tenant SQL', () => {
  let h: Harness;
  let crm: Crm;
  let tenant: { id: string; key: string };
  const pools = new ConnectorPools();

  before(async () => {
    h = await createHarness({ worker: false });
    crm = await createPgCrm({ orders: [{ order_id: '1', status: 'shipped', tracking_number: 'T1', customer_phone: '+15550001111' }] });
    tenant = await h.createTenant();
  });
  after(async () => {
    await pools.close();
    await crm.drop();
    await h.close();
  });

  const escapes: [string, string][] = [
    ['stacked statement', 'SELECT 1; DROP TABLE orders'],
    ['stacked after a comment', 'SELECT 1 -- x\n; DELETE FROM orders'],
    ['stacked after a block comment', 'SELECT 1 /* ; */ ; DELETE FROM orders'],
    // PostgreSQL nests block comments: a reader that does not would see the DELETE as code after the comment.
    ['nested block comment left open', 'SELECT 1 /* /* */ ; DELETE FROM orders'],
    ['dollar quote hiding nothing', 'SELECT $$a$$; DROP TABLE orders'],
    ['tagged dollar quote', 'SELECT $x$ $$ $x$; DROP TABLE orders'],
    ['E string with an escaped quote', "SELECT E'\\''; DROP TABLE orders; --'"],
    ['set_config', "SELECT set_config('statement_timeout', '0', false)"],
    ['current_setting', "SELECT current_setting('data_directory')"],
    ['pg_read_file', "SELECT pg_read_file('/etc/passwd')"],
    ['schema-qualified pg_read_file', "SELECT pg_catalog.pg_read_file('/etc/passwd')"],
    ['quoted function name', `SELECT "pg_read_file"('/etc/passwd')`],
    ['comment before the parenthesis', "SELECT pg_ls_dir /* x */ ('.')"],
    ['U& escaped identifier', `SELECT U&"\\0070g_read_file"('/etc/passwd')`],
    ['large objects', 'SELECT lo_import($1)'],
    ['dblink', "SELECT * FROM dblink('host=10.0.0.1', 'SELECT 1') AS t(x int)"],
    ['pg_sleep', 'SELECT pg_sleep(100)'],
    ['query_to_xml', "SELECT query_to_xml('DELETE FROM orders', true, true, '')"],
    ['COPY', "COPY orders TO '/tmp/x'"],
    ['SELECT INTO', 'SELECT * INTO stolen FROM orders'],
    ['data-modifying CTE', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d'],
    ['not a SELECT', 'DELETE FROM orders'],
    ['unterminated dollar quote', 'SELECT $$abc'],
  ];

  it('refuses each escape at PUT with a 400 naming the query', async () => {
    for (const [what, text] of escapes) {
      const res = await h.request('PUT', `/routes/tenants/${tenant.id}/data-sources`, {
        key: tenant.key,
        body: {
          data_sources: [{ id: 'crm', name: 'CRM', type: 'postgresql', connection: crm.connection, queries: { q: text } }],
        },
      });
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, /queries\.q/, what);
    }
  });

  it('accepts what only looks dangerous inside strings, comments and quoted identifiers', () => {
    for (const text of [
      "SELECT status FROM orders WHERE order_id = $1 AND status <> '; DROP TABLE orders'",
      'SELECT $$pg_read_file(1); DELETE$$ AS x, status FROM orders WHERE order_id = $1',
      "SELECT E'it\\'s; pg_sleep(1)' AS x FROM orders WHERE order_id = $1",
      'SELECT status AS "update" FROM orders -- ; DROP TABLE orders\nWHERE order_id = $1',
      'SELECT o.status FROM orders o WHERE o.order_id = $1;',
      "SELECT replace(status, '_', ' ') AS status, o.update FROM orders o WHERE order_id = $1",
    ]) {
      assert.equal(checkSql(text), undefined, text);
    }
    assert.match(checkSql("SELECT LOAD_FILE('/etc/passwd')", 'mysql') ?? '', /load_file/);
    assert.match(checkSql("SELECT * FROM orders INTO OUTFILE '/tmp/x'", 'mysql') ?? '', /INTO/);
    assert.match(checkSql('SELECT SLEEP(100)', 'mysql') ?? '', /sleep/);
    assert.match(checkSql("SELECT 'a\\'; DROP TABLE orders; -- '", 'mysql') ?? '', /backslash/);
    assert.match(checkSql('SELECT 1 /*!50000 ; DROP TABLE orders */', 'mysql') ?? '', /executable comment/);
  });

  it('on the wire, one statement on the extended protocol, read-only, under the statement timeout', async () => {
    const source = (queries: Record<string, string>, timeout_ms = 500) => ({
      id: `s${Object.keys(queries)[0]}`,
      name: 'CRM',
      type: 'postgresql' as const,
      served_by: 'parley' as const,
      connection: { ...crm.connection, timeout_ms },
      queries,
    });
    const run = (queries: Record<string, string>) =>
      runQuery(pools, tenant.id, source(queries), Object.keys(queries)[0], {}, [], { timeoutMs: 500 }).then(
        () => 'ran',
        (err: Error) => err.message,
      );
    // Unchecked text straight to the connector: the server side holds the line on its own.
    // The server's refusals arrive as their SQLSTATE (its text could quote a row): 42601 "cannot insert
    // multiple commands into a prepared statement", 25006 "read-only transaction".
    assert.match(await run({ stacked: 'SELECT 1; DROP TABLE orders' }), /SQLSTATE 42601/);
    assert.match(await run({ commit: 'COMMIT' }), /./);
    assert.match(await run({ cte: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d' }), /SQLSTATE 25006/);
    const started = Date.now();
    assert.match(await run({ sleep: 'SELECT pg_sleep(100)' }), /statement timeout/);
    assert.match(await run({ reset: "SELECT set_config('statement_timeout', '0', false), pg_sleep(100)" }), /statement timeout/);
    assert.ok(Date.now() - started < 10_000, 'both sleeps were cut by the timeout');
    assert.deepEqual(await crm.query('SELECT order_id, status FROM orders'), [{ order_id: '1', status: 'shipped' }]);
  });
});
