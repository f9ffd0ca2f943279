import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { deliveryEvents } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { providerIdForms, providerIdHash } from './provider-ids.js';
import { emitEvent, emitStatusEvents } from '../events/emit.js';

export type DeliveryStatus = 'sent' | 'delivered' | 'read' | 'failed';

export interface StatusEvent {
  tenantId: string;
  providerMessageId: string;
  status: DeliveryStatus;
  errorCode?: string;
  errorTitle?: string;
  occurredAt: Date;
}

/**
 * Records a status callback. Events are kept by (the hash of) the provider message id and the
 * message's state is derived from all of them (failed > read > delivered > sent), so arrival order
 * does not matter and a status that arrives before the send's own response is applied when that
 * response lands.
 */
export async function recordDeliveryStatus(db: Db, keyring: Keyring, event: StatusEvent): Promise<void> {
  await db
    .insert(deliveryEvents)
    .values({
      tenantId: event.tenantId,
      providerMessageId: providerIdHash(keyring, event.providerMessageId),
      status: event.status,
      errorCode: event.errorCode ?? null,
      errorTitle: event.errorTitle?.slice(0, 200) ?? null,
      occurredAt: event.occurredAt,
    })
    .onConflictDoNothing();
  await applyDeliveryStatus(db, keyring, event.tenantId, event.providerMessageId);
}

/**
 * Folds the recorded events into the outbound message carrying this provider id, if it is
 * known yet. Called after each event and after each send response: whichever of the two
 * commits last sees the other, so no status is missed.
 */
export async function applyDeliveryStatus(db: Db, keyring: Keyring, tenantId: string, providerMessageId: string): Promise<void> {
  const ids = sql.param(providerIdForms(keyring, providerMessageId));
  await db.execute(sql`
    UPDATE messages m
       SET delivery_status = e.status,
           delivery_error_code = e.error_code,
           delivery_error = e.error_title,
           delivery_updated_at = now(),
           status = CASE WHEN e.status = 'failed' THEN 'failed' ELSE m.status END
      FROM (SELECT status, error_code, error_title FROM delivery_events
             WHERE tenant_id = ${tenantId} AND provider_message_id = ANY(${ids}::text[])
             ORDER BY CASE status WHEN 'failed' THEN 4 WHEN 'read' THEN 3 WHEN 'delivered' THEN 2 ELSE 1 END DESC
             LIMIT 1) e
     WHERE m.tenant_id = ${tenantId} AND m.direction = 'outbound' AND m.provider_message_id = ANY(${ids}::text[])
       AND m.delivery_status IS DISTINCT FROM e.status`);
  await emitStatusEvents(db, tenantId, providerIdForms(keyring, providerMessageId));
}

/** Records a failure the provider told us synchronously (or that we decided), on the message itself. */
export async function recordSendFailure(db: Db, tenantId: string, messageId: string, code: string, title?: string): Promise<void> {
  await db.execute(sql`
    UPDATE messages SET status = 'failed', delivery_status = 'failed', delivery_error_code = ${code},
           delivery_error = ${title?.slice(0, 200) ?? null}, delivery_updated_at = now()
     WHERE tenant_id = ${tenantId} AND id = ${messageId}`);
  await emitEvent(db, {
    tenantId,
    type: 'message.status_updated',
    key: `${messageId}:failed`,
    messageId,
    data: { status: 'failed', error_code: code },
  });
}
