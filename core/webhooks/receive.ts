import type { Db } from '../db/client.js';
import { and, eq, isNull } from 'drizzle-orm';
import { messageMedia, messages as messagesTable, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { acceptInbound } from '../messaging/accept-inbound.js';
import { recordDeliveryStatus } from '../messaging/delivery-status.js';
import { bindSendKey } from '../messaging/reconcile.js';
import type { NormalizedInbound, NormalizedStatus } from './types.js';

export interface IngestResult {
  accepted: number;
  duplicates: number;
  statuses: number;
  /** Conversations with new messages, for the relay to deliver now. */
  conversations: Set<string>;
  /** Newly recorded media, for the download workflow. */
  media: { tenantId: string; mediaId: string }[];
}

export const emptyIngest = (): IngestResult => ({ accepted: 0, duplicates: 0, statuses: 0, conversations: new Set(), media: [] });

/**
 * Makes each message of a verified webhook durable, one by one (dedupe by provider message id
 * lives in acceptInbound, so a re-delivered webhook changes nothing), with its media metadata,
 * and records each status. Media rows are written for duplicates too: a webhook whose first
 * delivery died between the two writes is completed by the provider's re-delivery. A status that
 * echoes a send key binds the provider's message id to the outbound message sent under it.
 */
export async function ingest(
  db: Db,
  keyring: Keyring,
  channel: Channel,
  messages: NormalizedInbound[],
  statuses: NormalizedStatus[],
  into: IngestResult,
): Promise<void> {
  for (const m of messages) {
    const accepted = await acceptInbound(db, keyring, {
      tenantId: channel.tenantId,
      channelId: channel.id,
      from: m.from,
      text: m.text,
      timestamp: m.timestamp,
      providerMessageId: m.providerMessageId,
    });
    if (accepted.duplicate) into.duplicates++;
    else {
      into.accepted++;
      into.conversations.add(accepted.conversationId);
    }
    if (m.choiceId) {
      await db
        .update(messagesTable)
        .set({ choiceId: m.choiceId.slice(0, 256) })
        .where(and(eq(messagesTable.id, accepted.messageId), isNull(messagesTable.choiceId)));
    }
    for (const [position, item] of m.media.entries()) {
      const [row] = await db
        .insert(messageMedia)
        .values({
          tenantId: channel.tenantId,
          messageId: accepted.messageId,
          channelId: channel.id,
          position,
          kind: item.kind,
          refEnc: keyring.encrypt(item.ref, { tenantId: channel.tenantId, column: messageMedia.refEnc }),
          mimeType: item.mimeType ?? null,
          sha256: item.sha256 ?? null,
          filenameEnc: item.filename
            ? keyring.encrypt(item.filename, { tenantId: channel.tenantId, column: messageMedia.filenameEnc })
            : null,
        })
        .onConflictDoNothing({ target: [messageMedia.messageId, messageMedia.position] })
        .returning({ id: messageMedia.id });
      if (row) into.media.push({ tenantId: channel.tenantId, mediaId: row.id });
    }
  }
  for (const { sendKey, ...s } of statuses) {
    // Binding first: the status then folds into the message it names (an unknown send is reconciled by it).
    if (sendKey) await bindSendKey(db, keyring, channel.tenantId, sendKey, s.providerMessageId);
    await recordDeliveryStatus(db, keyring, { tenantId: channel.tenantId, ...s });
    into.statuses++;
  }
}
