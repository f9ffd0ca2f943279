import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { contacts, messages } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { notFound } from '../platform/errors.js';
import { conversationWorkflowIdPrefix } from '../platform/ids.js';
import { inboundEventCtes } from '../events/emit.js';

export interface InboundInput {
  tenantId: string;
  from: string;
  text: string;
  timestamp: string;
  /** The provider's message id, when it has one; the best de-duplication key. */
  providerMessageId?: string;
  /** Defaults to the tenant's default channel. */
  channelId?: string;
}

export interface AcceptedInbound {
  messageId: string;
  conversationId: string;
  duplicate: boolean;
}

type AcceptRow = { kind: 'duplicate' | 'accepted' | 'channel'; message_id: string | null; conversation_id: string | null };

/**
 * Makes an inbound message durable: contact, conversation, message, outbox row and its
 * `message.received` event in one
 * statement (one round trip, atomic like a transaction). Once this returns the message cannot
 * be lost; the relay takes it to Temporal. A re-delivery (same dedupe key) changes nothing and
 * reports the original message.
 */
export async function acceptInbound(db: Db, keyring: Keyring, input: InboundInput): Promise<AcceptedInbound> {
  const { tenantId } = input;
  const dedupeKey = keyring.blindIndex(
    input.providerMessageId
      ? `in:id:${input.providerMessageId}`
      : `in:${input.from}|${new Date(input.timestamp).toISOString()}|${input.text}`,
  );
  const phoneHash = keyring.blindIndex(input.from);
  const channelMatch = input.channelId ? sql`id = ${input.channelId}` : sql`is_default`;
  // The workflow id is conversationWorkflowId(tenant, channel, contact) (core/ids.ts), built in
  // SQL because both ids are known only inside the statement.
  const { rows } = await db.execute<AcceptRow>(sql`
    WITH dup AS (
      SELECT id, conversation_id FROM messages WHERE tenant_id = ${tenantId} AND dedupe_key = ${dedupeKey}
    ), channel AS (
      SELECT id, team FROM channels
       WHERE tenant_id = ${tenantId} AND ${channelMatch} AND NOT EXISTS (SELECT 1 FROM dup)
    ), contact AS (
      INSERT INTO contacts (tenant_id, phone_hash, phone_enc)
      SELECT ${tenantId}, ${phoneHash}, ${keyring.encrypt(input.from, { tenantId, column: contacts.phoneEnc })} FROM channel
      ON CONFLICT (tenant_id, phone_hash) DO UPDATE SET phone_hash = EXCLUDED.phone_hash
      RETURNING id
    ), conversation AS (
      INSERT INTO conversations (tenant_id, channel_id, contact_id, workflow_id, last_inbound_at, team)
      SELECT ${tenantId}, channel.id, contact.id,
             ${conversationWorkflowIdPrefix(tenantId)} || channel.id || '/' || contact.id,
             now(), channel.team
        FROM channel, contact
      ON CONFLICT (tenant_id, channel_id, contact_id)
      DO UPDATE SET status = 'open', last_inbound_at = now(), updated_at = now()
      RETURNING id
    ), message AS (
      INSERT INTO messages (tenant_id, conversation_id, direction, dedupe_key, body_enc, status, provider_message_id, created_at)
      SELECT ${tenantId}, conversation.id, 'inbound', ${dedupeKey}, ${keyring.encrypt(input.text, { tenantId, column: messages.bodyEnc })}, 'received',
             ${input.providerMessageId ? keyring.blindIndex(input.providerMessageId) : null}, ${new Date(input.timestamp).toISOString()}::timestamptz
        FROM conversation
      ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
      RETURNING id, conversation_id
    ), queued AS (
      INSERT INTO outbox (tenant_id, conversation_id, message_id) SELECT ${tenantId}, conversation_id, id FROM message
    )${inboundEventCtes(tenantId)}
    SELECT 'duplicate' AS kind, id AS message_id, conversation_id FROM dup
    UNION ALL SELECT 'accepted', id, conversation_id FROM message
    UNION ALL SELECT 'channel', NULL, NULL FROM channel`);
  const row = rows.find((r) => r.kind !== 'channel');
  if (row) return { messageId: row.message_id!, conversationId: row.conversation_id!, duplicate: row.kind === 'duplicate' };
  if (rows.length === 0) throw notFound('CHANNEL_NOT_FOUND', 'tenant_id: the tenant has no channel to receive on');
  // A concurrent delivery of the same message won the insert.
  const winner = await findByDedupeKey(db, tenantId, dedupeKey);
  return { ...winner!, duplicate: true };
}

async function findByDedupeKey(db: Db, tenantId: string, dedupeKey: string) {
  const [row] = await db
    .select({ messageId: messages.id, conversationId: messages.conversationId })
    .from(messages)
    .where(and(eq(messages.tenantId, tenantId), eq(messages.dedupeKey, dedupeKey)));
  return row;
}
