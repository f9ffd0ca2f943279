import { and, eq, sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { channels, contacts, conversations, messages, outbox } from './db/schema.js';
import type { Keyring } from './crypto.js';
import { notFound } from './errors.js';
import { conversationWorkflowId } from './ids.js';

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

/**
 * Makes an inbound message durable: contact, conversation, message and outbox row in one
 * transaction. Once this returns the message cannot be lost; the relay takes it to Temporal.
 * A re-delivery (same dedupe key) changes nothing and reports the original message.
 */
export async function acceptInbound(db: Db, keyring: Keyring, input: InboundInput): Promise<AcceptedInbound> {
  const dedupeKey = keyring.blindIndex(
    input.providerMessageId
      ? `in:id:${input.providerMessageId}`
      : `in:${input.from}|${new Date(input.timestamp).toISOString()}|${input.text}`,
  );
  const existing = await findByDedupeKey(db, input.tenantId, dedupeKey);
  if (existing) return { ...existing, duplicate: true };

  return db.transaction(async (tx) => {
    const [channel] = await tx
      .select({ id: channels.id, team: channels.team })
      .from(channels)
      .where(
        input.channelId
          ? and(eq(channels.tenantId, input.tenantId), eq(channels.id, input.channelId))
          : and(eq(channels.tenantId, input.tenantId), eq(channels.isDefault, true)),
      );
    if (!channel) throw notFound('CHANNEL_NOT_FOUND', 'tenant_id: the tenant has no channel to receive on');

    const phoneHash = keyring.blindIndex(input.from);
    const [newContact] = await tx
      .insert(contacts)
      .values({ tenantId: input.tenantId, phoneHash, phoneEnc: keyring.encrypt(input.from) })
      .onConflictDoNothing({ target: [contacts.tenantId, contacts.phoneHash] })
      .returning({ id: contacts.id });
    const contactId =
      newContact?.id ??
      (await tx
        .select({ id: contacts.id })
        .from(contacts)
        .where(and(eq(contacts.tenantId, input.tenantId), eq(contacts.phoneHash, phoneHash))))[0].id;

    const [conversation] = await tx
      .insert(conversations)
      .values({
        tenantId: input.tenantId,
        channelId: channel.id,
        contactId,
        workflowId: conversationWorkflowId(input.tenantId, channel.id, contactId),
        lastInboundAt: sql`now()`,
        // The channel's team owns the conversation from its start; handover may reassign it later.
        team: channel.team,
      })
      .onConflictDoUpdate({
        target: [conversations.tenantId, conversations.channelId, conversations.contactId],
        set: { status: 'open', lastInboundAt: sql`now()`, updatedAt: sql`now()` },
      })
      .returning({ id: conversations.id });

    const [message] = await tx
      .insert(messages)
      .values({
        tenantId: input.tenantId,
        conversationId: conversation.id,
        direction: 'inbound',
        dedupeKey,
        bodyEnc: keyring.encrypt(input.text),
        status: 'received',
        providerMessageId: input.providerMessageId ? keyring.blindIndex(input.providerMessageId) : null,
        createdAt: new Date(input.timestamp),
      })
      .onConflictDoNothing({ target: [messages.tenantId, messages.dedupeKey] })
      .returning({ id: messages.id });
    if (!message) {
      // A concurrent delivery of the same message won the insert.
      const winner = await findByDedupeKey(tx as unknown as Db, input.tenantId, dedupeKey);
      return { ...winner!, duplicate: true };
    }
    await tx.insert(outbox).values({ tenantId: input.tenantId, conversationId: conversation.id, messageId: message.id });
    return { messageId: message.id, conversationId: conversation.id, duplicate: false };
  });
}

async function findByDedupeKey(db: Db, tenantId: string, dedupeKey: string) {
  const [row] = await db
    .select({ messageId: messages.id, conversationId: messages.conversationId })
    .from(messages)
    .where(and(eq(messages.tenantId, tenantId), eq(messages.dedupeKey, dedupeKey)));
  return row;
}
