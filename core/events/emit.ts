import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/** Every event type an endpoint can subscribe to; `*` subscribes to all, including types added later. */
export const EVENT_TYPES = [
  'message.received',
  'message.sent',
  'message.status_updated',
  'conversation.handover_requested',
  'conversation.assigned',
  'conversation.resolved',
  'conversation.closed',
  'contact.opted_out',
  'contact.opted_in',
  'campaign.run_completed',
  'lookup.failed',
  'sla.breached',
  'flow.completed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Types whose body carries the message's text (or `text_redacted: true`). */
export const MESSAGE_EVENT_TYPES: readonly EventType[] = ['message.received', 'message.sent', 'message.status_updated'];

export interface EventFact {
  tenantId: string;
  type: EventType;
  /**
   * What identifies the fact within its type (a message id, a run id, a status and message id):
   * the event id derives from it, so a retried or replayed step never makes a second event.
   */
  key: string;
  conversationId?: string | null;
  messageId?: string | null;
  contactId?: string | null;
  /** Facts beyond the ids; never message text or phone numbers (those are read encrypted when sent). */
  data?: Record<string, unknown>;
}

/** The event id of a fact, in SQL: `evt_` and 32 hex digits of SHA-256 over tenant, type and key. */
const eventId = (tenantId: SQL | string, type: SQL | string, key: SQL | string) =>
  sql`'evt_' || left(encode(sha256(convert_to((${tenantId})::text || ':' || (${type})::text || ':' || (${key})::text, 'UTF8')), 'hex'), 32)`;

/**
 * One delivery per enabled endpoint subscribed to the events in CTE `source`; the insert trigger
 * wakes the event relay at commit. Deliveries of one endpoint and conversation share an order key.
 */
const fanOut = (source: string) =>
  sql.raw(`INSERT INTO event_deliveries (tenant_id, endpoint_id, event_id, event_seq, order_key)
    SELECT e.tenant_id, w.id, e.id, e.seq, w.id::text || '/' || coalesce(e.conversation_id::text, '-')
      FROM ${source} e
      JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.enabled AND (e.type = ANY(w.events) OR '*' = ANY(w.events))
    ON CONFLICT (endpoint_id, event_id) DO NOTHING`);

/**
 * Records an event and its deliveries in one statement. Pass the transaction that records the
 * fact, so both commit together: no fact without its event, no event without its fact.
 */
export async function emitEvent(db: Pick<Db, 'execute'>, fact: EventFact): Promise<void> {
  // A message's conversation and contact are filled in from the message when not given.
  await db.execute(sql`
    WITH ev AS (
      INSERT INTO events (id, tenant_id, type, conversation_id, message_id, contact_id, data)
      SELECT ${eventId(fact.tenantId, fact.type, fact.key)}, ${fact.tenantId}::text, ${fact.type}::text,
             coalesce(${fact.conversationId ?? null}::uuid, m.conversation_id), ${fact.messageId ?? null}::uuid,
             coalesce(${fact.contactId ?? null}::uuid, c.contact_id), ${JSON.stringify(fact.data ?? {})}::jsonb
        FROM (SELECT 1) one
        LEFT JOIN messages m ON m.id = ${fact.messageId ?? null}::uuid AND m.tenant_id = ${fact.tenantId}
        LEFT JOIN conversations c ON c.id = coalesce(${fact.conversationId ?? null}::uuid, m.conversation_id) AND c.tenant_id = ${fact.tenantId}
      ON CONFLICT (id) DO NOTHING
      RETURNING id, seq, tenant_id, type, conversation_id
    )
    ${fanOut('ev')}`);
}

/**
 * `message.status_updated` for each delivered, read or failed status recorded for the outbound
 * message with this provider id, given in each form it may be stored under (once per status and
 * message; a no-op until the message is known).
 */
export async function emitStatusEvents(db: Pick<Db, 'execute'>, tenantId: string, providerMessageIds: string[]): Promise<void> {
  await db.execute(sql`
    WITH ev AS (
      INSERT INTO events (id, tenant_id, type, conversation_id, message_id, contact_id, data)
      SELECT ${eventId(tenantId, 'message.status_updated', sql`m.id::text || ':' || d.status`)}, ${tenantId}::text, 'message.status_updated',
             m.conversation_id, m.id, c.contact_id,
             jsonb_strip_nulls(jsonb_build_object('status', d.status, 'error_code', d.error_code, 'occurred_at', d.occurred_at))
        FROM delivery_events d
        JOIN messages m ON m.tenant_id = d.tenant_id AND m.direction = 'outbound' AND m.provider_message_id = d.provider_message_id
        JOIN conversations c ON c.id = m.conversation_id
       WHERE d.tenant_id = ${tenantId} AND d.provider_message_id = ANY(${sql.param(providerMessageIds)}::text[]) AND d.status IN ('delivered', 'read', 'failed')
      ON CONFLICT (id) DO NOTHING
      RETURNING id, seq, tenant_id, type, conversation_id
    )
    ${fanOut('ev')}`);
}

/**
 * CTEs that add `message.received` to the inbound accept statement (core/messaging/accept-inbound.ts),
 * reading its `message` and `contact` CTEs: the event commits with the message, or neither does.
 */
export function inboundEventCtes(tenantId: string): SQL {
  return sql`, received_event AS (
      INSERT INTO events (id, tenant_id, type, conversation_id, message_id, contact_id)
      SELECT ${eventId(tenantId, 'message.received', sql`message.id::text`)}, ${tenantId}, 'message.received',
             message.conversation_id, message.id, contact.id
        FROM message, contact
      RETURNING id, seq, tenant_id, type, conversation_id
    ), received_deliveries AS (${fanOut('received_event')})`;
}
