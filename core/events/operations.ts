import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { badRequest, conflict, notFound } from '../platform/errors.js';
import type { EventType } from './emit.js';
import { getEndpoint } from './endpoints.js';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

type DeliveryRow = {
  id: string;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_latency_ms: number | null;
  last_error: string | null;
  next_retry_at: Date | null;
  created_at: Date;
  delivered_at: Date | null;
  event_seq: string;
};

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/** The cursor is the last row's event sequence number, opaque to clients. */
const encodeCursor = (seq: string) => Buffer.from(seq).toString('base64url');
function decodeCursor(cursor: string): string {
  const seq = Buffer.from(cursor, 'base64url').toString();
  if (!/^\d{1,19}$/.test(seq)) throw badRequest('INVALID_CURSOR', 'query.cursor: not a cursor this endpoint returned');
  return seq;
}

/** An endpoint's deliveries, newest event first, a page at a time. */
export async function listDeliveries(
  db: Db,
  tenantId: string,
  endpointId: string,
  q: { status?: DeliveryStatus; cursor?: string; limit: number },
) {
  await getEndpoint(db, tenantId, endpointId);
  const after = q.cursor ? decodeCursor(q.cursor) : null;
  const { rows } = await db.execute<DeliveryRow>(sql`
    SELECT d.id, d.event_id, e.type AS event_type, d.status, d.attempts, d.last_status_code, d.last_latency_ms, d.last_error,
           d.next_retry_at, d.created_at, d.delivered_at, d.event_seq::text
      FROM event_deliveries d JOIN events e ON e.id = d.event_id
     WHERE d.tenant_id = ${tenantId} AND d.endpoint_id = ${endpointId}
       ${q.status ? sql`AND d.status = ${q.status}` : sql``}
       ${after ? sql`AND d.event_seq < ${after}::bigint` : sql``}
     ORDER BY d.event_seq DESC LIMIT ${q.limit + 1}`);
  const page = rows.slice(0, q.limit);
  return {
    deliveries: page.map((r) => ({
      id: r.id,
      event_id: r.event_id,
      event_type: r.event_type,
      status: r.status,
      attempts: r.attempts,
      last_status_code: r.last_status_code,
      latency_ms: r.last_latency_ms,
      last_error: r.last_error,
      next_retry_at: r.status === 'pending' ? iso(r.next_retry_at) : null,
      created_at: iso(r.created_at)!,
      delivered_at: iso(r.delivered_at),
    })),
    next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].event_seq) : null,
  };
}

function assertEnabled(endpoint: { enabled: boolean; id: string }): void {
  if (!endpoint.enabled) {
    throw conflict('ENDPOINT_DISABLED', `id: webhook endpoint "${endpoint.id}" is disabled; enable it with PATCH {"enabled": true} first`);
  }
}

/** Sends a delivery again (same event id, same body) at the end of its conversation's queue. */
export async function redeliver(db: Db, tenantId: string, endpointId: string, deliveryId: string) {
  assertEnabled(await getEndpoint(db, tenantId, endpointId));
  const { rows } = await db.execute<{ id: string }>(sql`
    UPDATE event_deliveries SET status = 'pending', generation = generation + 1, next_retry_at = NULL,
           next_dispatch_at = now(), dispatch_attempts = 0, updated_at = now()
     WHERE tenant_id = ${tenantId} AND endpoint_id = ${endpointId} AND id = ${deliveryId}
    RETURNING id`);
  if (rows.length === 0) throw notFound('DELIVERY_NOT_FOUND', `delivery_id: no delivery "${deliveryId}" for this endpoint`);
  return { id: deliveryId, status: 'pending' as const };
}

/**
 * Sends again every event the endpoint subscribes to whose `created_at` is in [since, until):
 * existing deliveries are re-armed, events from before the endpoint existed get one.
 */
export async function replay(db: Db, tenantId: string, endpointId: string, r: { since: Date; until?: Date; types?: EventType[] }) {
  const endpoint = await getEndpoint(db, tenantId, endpointId);
  assertEnabled(endpoint);
  const until = r.until ?? new Date();
  if (until <= r.since) throw badRequest('INVALID_RANGE', 'body.until: must be after body.since');
  const { rows } = await db.execute<{ id: string }>(sql`
    INSERT INTO event_deliveries (tenant_id, endpoint_id, event_id, event_seq, order_key)
    SELECT e.tenant_id, ${endpointId}::uuid, e.id, e.seq, ${endpointId}::text || '/' || coalesce(e.conversation_id::text, '-')
      FROM events e
     WHERE e.tenant_id = ${tenantId} AND e.created_at >= ${r.since.toISOString()}::timestamptz AND e.created_at < ${until.toISOString()}::timestamptz
       AND (e.type = ANY(${sql.param(endpoint.events)}::text[]) OR '*' = ANY(${sql.param(endpoint.events)}::text[]))
       ${r.types ? sql`AND e.type = ANY(${sql.param(r.types)}::text[])` : sql``}
    ON CONFLICT (endpoint_id, event_id) DO UPDATE
       SET status = 'pending', generation = event_deliveries.generation + 1, next_retry_at = NULL,
           next_dispatch_at = now(), dispatch_attempts = 0, updated_at = now()
    RETURNING id`);
  return { count: rows.length };
}

/** For `GET /`: deliveries still pending, and endpoints disabled for answering 410 or failing for 24 hours. */
export async function eventHealth(db: Db): Promise<{ pending_deliveries: number; endpoints_disabled: number }> {
  const { rows } = await db.execute<{ pending_deliveries: number; endpoints_disabled: number }>(sql`
    SELECT (SELECT count(*)::int FROM event_deliveries WHERE status = 'pending') AS pending_deliveries,
           (SELECT count(*)::int FROM webhook_endpoints WHERE NOT enabled AND disabled_reason IN ('gone', 'failing_24h')) AS endpoints_disabled`);
  return rows[0];
}
