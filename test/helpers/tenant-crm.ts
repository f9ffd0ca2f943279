import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { createTestDatabase } from './harness.js';

/** A tenant's own CRM database: orders and appointments, seeded per test file. */
export interface Crm {
  connection: { host: string; port: number; database: string; username: string; password?: string };
  /** Runs SQL as the database owner (to check what a lookup did or did not change). */
  query(text: string): Promise<Record<string, unknown>[]>;
  drop(): Promise<void>;
}

export interface CrmSeed {
  orders: { order_id: string; status: string; tracking_number: string; customer_phone: string }[];
  appointments?: { customer_phone: string; starts_at: string; with_whom: string }[];
}

const TABLES = `
  CREATE TABLE orders (order_id varchar(40) PRIMARY KEY, status varchar(40) NOT NULL, tracking_number varchar(40), customer_phone varchar(20));
  CREATE TABLE appointments (customer_phone varchar(20) NOT NULL, starts_at varchar(40) NOT NULL, with_whom varchar(80) NOT NULL)`;

/**
 * A TCP forwarder on its own port: the tenant's database server as the tenant sees it. The
 * suite's PostgreSQL also holds Parley's own database, whose host:port the egress policy
 * refuses as a data source, so tenant CRMs are reached at another address.
 */
async function forwarder(host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(port, host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A second database on the suite's PostgreSQL server, reached through its own port. */
export async function createPgCrm(seed: CrmSeed): Promise<Crm> {
  const database = await createTestDatabase();
  const url = new URL(database.url);
  const proxy = await forwarder(url.hostname, Number(url.port || 5432));
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  for (const stmt of TABLES.split(';')) await client.query(stmt);
  for (const o of seed.orders)
    await client.query('INSERT INTO orders VALUES ($1, $2, $3, $4)', [o.order_id, o.status, o.tracking_number, o.customer_phone]);
  for (const a of seed.appointments ?? [])
    await client.query('INSERT INTO appointments VALUES ($1, $2, $3)', [a.customer_phone, a.starts_at, a.with_whom]);
  return {
    connection: {
      host: '127.0.0.1',
      port: proxy.port,
      database: url.pathname.slice(1),
      username: decodeURIComponent(url.username || 'postgres'),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    },
    async query(text) {
      return (await client.query(text)).rows;
    },
    async drop() {
      await client.end();
      await proxy.close();
      await database.drop();
    },
  };
}

export const MYSQL = { host: process.env.TEST_MYSQL_HOST ?? '127.0.0.1', port: Number(process.env.TEST_MYSQL_PORT ?? 3306), user: 'root' };

/** A database on the local MariaDB/MySQL server, or undefined (with the reason) when none is reachable. */
export async function createMysqlCrm(seed: CrmSeed): Promise<Crm | string> {
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({ ...MYSQL, connectTimeout: 2000 });
  } catch (err) {
    return `no MySQL/MariaDB on ${MYSQL.host}:${MYSQL.port} (${(err as Error).message})`;
  }
  const name = `crm_${randomBytes(5).toString('hex')}`;
  await conn.query(`CREATE DATABASE ${name}`);
  await conn.query(`USE ${name}`);
  for (const stmt of TABLES.split(';')) await conn.query(stmt);
  for (const o of seed.orders)
    await conn.execute('INSERT INTO orders VALUES (?, ?, ?, ?)', [o.order_id, o.status, o.tracking_number, o.customer_phone]);
  return {
    connection: { host: MYSQL.host, port: MYSQL.port, database: name, username: MYSQL.user },
    async query(text) {
      const [rows] = await conn.query(text);
      return rows as Record<string, unknown>[];
    },
    async drop() {
      await conn.query(`DROP DATABASE IF EXISTS ${name}`);
      await conn.end();
    },
  };
}
