import { ApplicationFailure } from '@temporalio/activity';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../core/db/client.js';
import { aiProfiles, channels, contacts, conversations, dataIntents, messages, tenants } from '../core/db/schema.js';
import type { Keyring } from '../core/platform/crypto.js';
import { FailureType } from '../core/platform/errors.js';
import { MIN_KNOWLEDGE_SCORE, searchKnowledge } from '../core/knowledge/entries.js';
import type { Providers } from '../core/providers/index.js';
import { applyConsentKeyword } from '../core/pulse/contacts.js';
import type {
  AnsweredTurn,
  AnswerTurnInput,
  ConversationRef,
  PlanTurnInput,
  SendReplyInput,
  SentReply,
  TurnPlan,
} from '../contracts/conversation.js';
import { readSettings } from '../core/tenants/settings.js';
import { planLegacyTurn } from './legacy.js';
import { aiRoute } from './ai.js';
import { planDataLookup } from './data.js';

export interface ConversationDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
}

/**
 * Everything planTurn reads about the tenant and the conversation, in one query: each
 * capability used to make its own look-up, six round trips per turn.
 */
async function loadTurnContext(db: Db, tenantId: string, conversationId: string) {
  const [row] = await db
    .select({
      fallback: tenants.fallbackMessage,
      mode: tenants.mode,
      settings: tenants.settings,
      contactId: conversations.contactId,
      phoneEnc: contacts.phoneEnc,
      needsHuman: sql<boolean>`coalesce(${conversations.needsHuman}, false)`,
      hasAiProfile: sql<boolean>`${aiProfiles.tenantId} IS NOT NULL`,
      monthlyTokenBudget: aiProfiles.monthlyTokenBudget,
      hasIntents: sql<boolean>`EXISTS (SELECT 1 FROM ${dataIntents} WHERE ${dataIntents.tenantId} = ${tenants.id})`,
    })
    .from(tenants)
    .leftJoin(conversations, and(eq(conversations.id, conversationId), eq(conversations.tenantId, tenants.id)))
    .leftJoin(contacts, eq(contacts.id, conversations.contactId))
    .leftJoin(aiProfiles, eq(aiProfiles.tenantId, tenants.id))
    .where(eq(tenants.id, tenantId));
  return row;
}

export function createConversationActivities({ db, keyring, providers }: ConversationDeps) {
  const activities = {
    /**
     * Decides how to answer a turn: consent keywords first; not at all once a person has taken
     * over; legacy-mode tenants hand it to n8n as a job; with the LLM when the tenant has an AI
     * profile and budget left; else from its knowledge, else its fallback.
     */
    async planTurn(input: PlanTurnInput): Promise<TurnPlan> {
      const tenant = await loadTurnContext(db, input.tenantId, input.conversationId);
      if (!tenant) throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'tenant no longer exists', nonRetryable: true });
      // STOP / UNSUBSCRIBE / START flip consent before anything else and are confirmed, not answered.
      const consent = await applyConsentKeyword(db, {
        tenantId: input.tenantId,
        contactId: tenant.contactId,
        settings: readSettings(tenant),
        texts: input.messages.map((m) => m.text),
      });
      if (consent) return { kind: 'reply', text: consent.confirmation, source: 'consent' };
      const route = await aiRoute(db, input.tenantId, tenant);
      if (route === 'human') return { kind: 'human' };
      if (tenant.mode === 'legacy_n8n') return planLegacyTurn({ db, keyring }, input, tenant);
      const question = input.messages.map((m) => m.text).join('\n');
      // Live data first: a question an intent recognises is answered from the tenant's systems.
      const lookup = tenant.hasIntents
        ? await planDataLookup(db, keyring, { tenantId: input.tenantId, phoneEnc: tenant.phoneEnc, text: question }, tenant.fallback)
        : undefined;
      if (lookup) return lookup;
      const [best] = await searchKnowledge(db, input.tenantId, question, 1);
      const noLlm =
        best && best.score >= MIN_KNOWLEDGE_SCORE
          ? ({ kind: 'reply', text: best.content, source: 'knowledge', knowledgeId: best.id } as const)
          : ({ kind: 'reply', text: tenant.fallback, source: 'fallback' } as const);
      return route === 'llm' ? { kind: 'ai', noLlm, fallbackText: tenant.fallback } : noLlm;
    },

    /**
     * Records the reply under its reply key before sending, so a retried or replayed turn
     * finds it: a reply already sent is not sent again, one interrupted mid-send is resent
     * with the same provider idempotency key.
     */
    async sendReply(input: SendReplyInput): Promise<SentReply> {
      const [inserted] = await db
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
          sourceChunkIds: input.sourceChunkIds?.length ? input.sourceChunkIds : null,
        })
        .onConflictDoNothing({ target: [messages.tenantId, messages.dedupeKey] })
        .returning({ id: messages.id, status: messages.status, sentAt: messages.sentAt });
      // Only a retried or replayed turn finds its reply already there.
      const [outbound] = inserted
        ? [inserted]
        : await db
            .select({ id: messages.id, status: messages.status, sentAt: messages.sentAt })
            .from(messages)
            .where(and(eq(messages.tenantId, input.tenantId), eq(messages.dedupeKey, input.replyKey)));
      if (outbound.status !== 'sending') {
        return {
          messageId: outbound.id,
          status: outbound.status === 'failed' ? 'failed' : 'sent',
          sentAt: (outbound.sentAt ?? new Date()).toISOString(),
        };
      }

      const [target] = await db
        .select({ channel: channels, phoneEnc: contacts.phoneEnc })
        .from(channels)
        .innerJoin(contacts, eq(contacts.id, input.contactId))
        .where(and(eq(channels.id, input.channelId), eq(channels.tenantId, input.tenantId), eq(contacts.tenantId, input.tenantId)));
      if (!target)
        throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'channel or contact no longer exists', nonRetryable: true });
      // A disabled channel's refusal is recorded as a failed delivery by deliverReply, like any provider's.
      if (target.channel.provider !== 'sandbox' || !target.channel.enabled) {
        return { messageId: outbound.id, status: 'queued', sentAt: new Date().toISOString() };
      }

      const result = await providers.forChannel(target.channel).sendText({
        tenantId: input.tenantId,
        channel: target.channel,
        to: keyring.decrypt(target.phoneEnc),
        text: input.text,
        idempotencyKey: `${input.tenantId}:${input.replyKey}`,
        inReplyTo: input.inReplyTo,
      });
      // The reply and the messages it answers, in one statement.
      const { rows } = await db.execute<{ sent_at: Date }>(sql`
        WITH answered AS (
          UPDATE ${messages} SET status = 'answered'
           WHERE tenant_id = ${input.tenantId} AND id = ANY(${sql.param(input.inReplyTo)}::uuid[])
        )
        UPDATE ${messages} SET status = 'sent', provider_message_id = ${result.providerMessageId}, sent_at = now()
         WHERE id = ${outbound.id}
        RETURNING sent_at`);
      return { messageId: outbound.id, status: 'sent', sentAt: new Date(rows[0].sent_at).toISOString() };
    },

    /**
     * planTurn, and for a plain reply sendReply too, in one local activity: one workflow
     * activation and one activity dispatch fewer for most turns. A retry re-plans, and the
     * reply key keeps the send single.
     */
    async answerTurn(input: AnswerTurnInput): Promise<AnsweredTurn> {
      const { reply, ...turn } = input;
      const plan = await activities.planTurn(turn);
      if (plan.kind !== 'reply') return { plan };
      const sent = await activities.sendReply({
        ...reply,
        text: plan.text,
        source: plan.source,
        sourceChunkIds: plan.knowledgeId ? [plan.knowledgeId] : undefined,
      });
      return { plan, sent };
    },

    async closeConversation(input: ConversationRef): Promise<void> {
      await db
        .update(conversations)
        .set({ status: 'closed', updatedAt: sql`now()` })
        .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)));
    },
  };
  return activities;
}
