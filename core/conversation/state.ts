import { and, eq, sql } from 'drizzle-orm';
import type { HandoverReason } from '../../contracts/ai.js';
import { recordEvent } from '../ai/usage.js';
import type { Db } from '../db/client.js';
import { conversations } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { emitEvent } from '../events/emit.js';

/** Marks the conversation for a person: the bot stays silent on it from now on. Only the first handover is recorded. */
export async function handOver(
  db: Db,
  keyring: Keyring,
  input: { tenantId: string; conversationId: string; reason: HandoverReason; note?: string; confidence: number },
): Promise<void> {
  const updated = await db
    .update(conversations)
    .set({
      needsHuman: true,
      handoverReason: input.reason,
      handoverNoteEnc: input.note ? keyring.encrypt(input.note, { tenantId: input.tenantId, column: conversations.handoverNoteEnc }) : null,
      handedOverAt: sql`now()`,
      updatedAt: sql`now()`,
    })
    .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId), eq(conversations.needsHuman, false)))
    .returning({ id: conversations.id, at: conversations.handedOverAt });
  // Emitted also when a retried call finds the handover already recorded: the event id makes it once.
  const [handedOver] = updated.length
    ? updated
    : await db
        .select({ id: conversations.id, at: conversations.handedOverAt })
        .from(conversations)
        .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)));
  if (handedOver?.at) {
    const { tenantId, conversationId, reason } = input;
    await emitEvent(db, {
      tenantId,
      type: 'conversation.handover_requested',
      key: `${conversationId}:${handedOver.at.toISOString()}`,
      conversationId,
      data: { reason },
    });
  }
  if (updated.length) {
    await recordEvent(db, {
      tenantId: input.tenantId,
      conversationId: input.conversationId,
      kind: 'handover',
      detail: { reason: input.reason, confidence: input.confidence },
    });
  }
}

/** The conversation's workflow ended: it is closed until the customer writes again. */
export async function closeConversation(db: Db, input: { tenantId: string; conversationId: string }): Promise<void> {
  const [closed] = await db
    .update(conversations)
    .set({ status: 'closed', updatedAt: sql`now()` })
    .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)))
    .returning({ lastInboundAt: conversations.lastInboundAt });
  // One close per stretch of activity: a retried close finds the same last inbound time.
  if (closed)
    await emitEvent(db, { ...input, type: 'conversation.closed', key: `${input.conversationId}:${closed.lastInboundAt?.toISOString()}` });
}
