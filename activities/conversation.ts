import { ApplicationFailure } from '@temporalio/activity';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../core/db/client.js';
import { channels, contacts, conversations, messages, tenants } from '../core/db/schema.js';
import type { Keyring } from '../core/crypto.js';
import { FailureType } from '../core/errors.js';
import { MIN_KNOWLEDGE_SCORE, searchKnowledge } from '../core/knowledge.js';
import type { Providers } from '../core/providers/index.js';
import type { Exchange } from '../workflows/conversation.js';
import type { LookupTurnPlan } from '../core/data-engine/types.js';
import { planDataLookup } from './data.js';

export interface ConversationDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
}

export interface PlanTurnInput {
  tenantId: string;
  conversationId: string;
  messages: { id: string; text: string }[];
  memory: Exchange[];
}

/**
 * What the workflow does with a turn. Each capability that answers differently
 * (legacy n8n jobs, data lookups, LLM, handover) adds a variant and a case in the workflow.
 */
export type TurnPlan = { kind: 'reply'; text: string; source: 'knowledge' | 'fallback'; knowledgeId?: string } | LookupTurnPlan;

export interface SendReplyInput {
  tenantId: string;
  conversationId: string;
  channelId: string;
  contactId: string;
  replyKey: string;
  inReplyTo: string[];
  text: string;
  source: string;
}

export interface SentReply {
  messageId: string;
  status: 'sent' | 'failed';
  sentAt: string;
}

export function createConversationActivities({ db, keyring, providers }: ConversationDeps) {
  return {
    /** Decides how to answer a turn: from the tenant's knowledge entries, else its fallback message. */
    async planTurn(input: PlanTurnInput): Promise<TurnPlan> {
      const [tenant] = await db
        .select({ fallback: tenants.fallbackMessage })
        .from(tenants)
        .where(eq(tenants.id, input.tenantId));
      if (!tenant) throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'tenant no longer exists', nonRetryable: true });
      const question = input.messages.map((m) => m.text).join('\n');
      // Live data first: a question an intent recognises is answered from the tenant's systems.
      const lookup = await planDataLookup(db, keyring, { tenantId: input.tenantId, conversationId: input.conversationId, text: question }, tenant.fallback);
      if (lookup) return lookup;
      const [best] = await searchKnowledge(db, input.tenantId, question, 1);
      if (best && best.score >= MIN_KNOWLEDGE_SCORE) return { kind: 'reply', text: best.content, source: 'knowledge', knowledgeId: best.id };
      return { kind: 'reply', text: tenant.fallback, source: 'fallback' };
    },

    /**
     * Records the reply under its reply key before sending, so a retried or replayed turn
     * finds it: a reply already sent is not sent again, one interrupted mid-send is resent
     * with the same provider idempotency key.
     */
    async sendReply(input: SendReplyInput): Promise<SentReply> {
      await db
        .insert(messages)
        .values({
          tenantId: input.tenantId,
          conversationId: input.conversationId,
          direction: 'outbound',
          dedupeKey: input.replyKey,
          bodyEnc: keyring.encrypt(input.text),
          status: 'sending',
          inReplyTo: input.inReplyTo,
          replySource: input.source,
        })
        .onConflictDoNothing({ target: [messages.tenantId, messages.dedupeKey] });
      const [outbound] = await db
        .select({ id: messages.id, status: messages.status, sentAt: messages.sentAt })
        .from(messages)
        .where(and(eq(messages.tenantId, input.tenantId), eq(messages.dedupeKey, input.replyKey)));
      if (outbound.status !== 'sending') {
        return { messageId: outbound.id, status: outbound.status === 'failed' ? 'failed' : 'sent', sentAt: (outbound.sentAt ?? new Date()).toISOString() };
      }

      const [target] = await db
        .select({ channel: channels, phoneEnc: contacts.phoneEnc })
        .from(channels)
        .innerJoin(contacts, eq(contacts.id, input.contactId))
        .where(and(eq(channels.id, input.channelId), eq(channels.tenantId, input.tenantId), eq(contacts.tenantId, input.tenantId)));
      if (!target) throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'channel or contact no longer exists', nonRetryable: true });

      const result = await providers.forChannel(target.channel).sendText({
        tenantId: input.tenantId,
        channel: target.channel,
        to: keyring.decrypt(target.phoneEnc),
        text: input.text,
        idempotencyKey: `${input.tenantId}:${input.replyKey}`,
        inReplyTo: input.inReplyTo,
      });
      const [updated] = await db
        .update(messages)
        .set({ status: 'sent', providerMessageId: result.providerMessageId, sentAt: sql`now()` })
        .where(eq(messages.id, outbound.id))
        .returning({ sentAt: messages.sentAt });
      await db
        .update(messages)
        .set({ status: 'answered' })
        .where(and(eq(messages.tenantId, input.tenantId), inArray(messages.id, input.inReplyTo)));
      return { messageId: outbound.id, status: 'sent', sentAt: updated.sentAt!.toISOString() };
    },

    async closeConversation(input: { tenantId: string; conversationId: string }): Promise<void> {
      await db
        .update(conversations)
        .set({ status: 'closed', updatedAt: sql`now()` })
        .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)));
    },
  };
}
