import type pg from 'pg';
import type { Keyring } from '../platform/crypto.js';

/*
 * Provider message ids are stored as the keyring's blind index, never in clear: Meta's wamids
 * embed the customer's number. Inbound ids have always been; outbound ones (messages,
 * campaign_sends) and status callbacks (delivery_events) are from migration 1400 on. Status
 * callbacks only need equality, so nothing keeps the raw id.
 */

/** What a blind index looks like (base64url of an HMAC-SHA256); no provider's raw id has this shape. */
const HASH_SHAPE = '^[A-Za-z0-9_-]{43}$';

/** The stored form of a provider message id. */
export const providerIdHash = (keyring: Keyring, providerMessageId: string): string => keyring.blindIndex(providerMessageId);

/**
 * Every form a provider id may be stored under: its hash, and the raw id that rows written
 * before migration 1400 carry until `hashStoredProviderIds` has converted them (a replica of
 * the previous release may still write one during a rolling deploy).
 */
export const providerIdForms = (keyring: Keyring, providerMessageId: string): string[] => [
  providerIdHash(keyring, providerMessageId),
  providerMessageId,
];

interface Target {
  table: string;
  where: string;
  /** delivery_events has the id in its primary key: a converted row may meet one already hashed. */
  keyed: boolean;
}

const TARGETS: Target[] = [
  { table: 'messages', where: "direction = 'outbound'", keyed: false },
  { table: 'campaign_sends', where: 'true', keyed: false },
  { table: 'delivery_events', where: 'true', keyed: true },
];

/**
 * Converts provider ids still stored in clear to their hash (SQL cannot: the key is not in the
 * database). Runs at every start-up after the migrations and is idempotent: short batches walk
 * each table in physical order, and a row is rewritten only if it still holds the value read,
 * so concurrent writers are never overwritten. Returns the rows converted per table.
 */
export async function hashStoredProviderIds(pool: pg.Pool, keyring: Keyring, batchSize = 500): Promise<Record<string, number>> {
  const converted: Record<string, number> = {};
  for (const { table, where, keyed } of TARGETS) {
    let after = '(0,0)';
    let n = 0;
    for (;;) {
      const { rows } = await pool.query<{ ctid: string; value: string }>(
        `SELECT ctid::text AS ctid, provider_message_id AS value FROM ${table}
          WHERE ctid > $1::tid AND ${where} AND provider_message_id IS NOT NULL AND provider_message_id !~ $2
          ORDER BY ctid LIMIT $3`,
        [after, HASH_SHAPE, batchSize],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1].ctid;
      const params = [rows.map((r) => r.ctid), rows.map((r) => r.value), rows.map((r) => providerIdHash(keyring, r.value))];
      const values = 'unnest($1::tid[], $2::text[], $3::text[]) AS v(ctid, old, new)';
      const res = keyed
        ? await pool.query(
            `WITH moved AS (
               DELETE FROM ${table} x USING ${values}
                WHERE x.ctid = v.ctid AND x.provider_message_id = v.old
               RETURNING x.tenant_id, v.new, x.status, x.error_code, x.error_title, x.occurred_at, x.received_at
             )
             INSERT INTO ${table} (tenant_id, provider_message_id, status, error_code, error_title, occurred_at, received_at)
             SELECT * FROM moved ON CONFLICT DO NOTHING`,
            params,
          )
        : await pool.query(
            `UPDATE ${table} AS x SET provider_message_id = v.new FROM ${values}
              WHERE x.ctid = v.ctid AND x.provider_message_id = v.old`,
            params,
          );
      n += res.rowCount ?? 0;
    }
    converted[table] = n;
  }
  return converted;
}
