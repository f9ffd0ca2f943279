import { ApplicationFailure } from '@temporalio/activity';
import { and, eq, sql } from 'drizzle-orm';
import { answerWithLlm, type AiAnswer, type HandoverReason } from '../core/ai/answer.js';
import { LlmError } from '../core/ai/llm.js';
import { loadAiProfile } from '../core/ai/profile.js';
import type { MemoryTurn } from '../core/ai/prompt.js';
import type { AiToolSource } from '../core/ai/tools.js';
import { budgetExhausted, recordEvent } from '../core/ai/usage.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import { conversations } from '../core/db/schema.js';
import { FailureType } from '../core/platform/errors.js';

export interface AiDeps {
  db: Db;
  keyring: Keyring;
  /** Optional AI settings of the worker: tool sources (the Data Engine's lookups) and the provider timeout. */
  ai?: { tools?: AiToolSource[]; requestTimeoutMs?: number };
}

export interface AiReplyInput {
  tenantId: string;
  conversationId: string;
  question: string;
  memory: MemoryTurn[];
}

/** Whether a conversation is with a person now, and whether its tenant answers with an LLM this month. */
export async function aiRoute(
  db: Db,
  tenantId: string,
  conversation: { needsHuman: boolean; hasAiProfile: boolean; monthlyTokenBudget: number | null },
): Promise<'human' | 'llm' | 'no_llm'> {
  if (conversation.needsHuman) return 'human';
  if (!conversation.hasAiProfile) return 'no_llm';
  return (await budgetExhausted(db, tenantId, conversation.monthlyTokenBudget)) ? 'no_llm' : 'llm';
}

export function createAiActivities({ db, keyring, ai }: AiDeps) {
  return {
    /** One LLM answer for a turn (a regular activity: timeout, retries on 429/5xx, visible in the UI). */
    async aiReply(input: AiReplyInput): Promise<AiAnswer> {
      const profile = await loadAiProfile(db, keyring, input.tenantId);
      if (!profile)
        throw ApplicationFailure.create({
          type: FailureType.NotFound,
          message: 'the tenant has no AI profile any more',
          nonRetryable: true,
        });
      try {
        return await answerWithLlm({ db, tools: ai?.tools ?? [], timeoutMs: ai?.requestTimeoutMs }, profile, {
          conversationId: input.conversationId,
          question: input.question,
          memory: input.memory,
          purpose: 'chat',
          allowHandover: true,
        });
      } catch (err) {
        if (!(err instanceof LlmError)) throw err;
        await recordEvent(db, {
          tenantId: input.tenantId,
          conversationId: input.conversationId,
          kind: 'llm_error',
          detail: { message: err.message, status: err.status ?? null },
        });
        throw ApplicationFailure.create({
          type: err.failureType ?? (err.retryable ? FailureType.LlmUnavailable : FailureType.BadRequest),
          message: err.message,
          nonRetryable: !err.retryable,
        });
      }
    },

    /** Marks the conversation for a person: the bot stays silent on it from now on. */
    async handOver(input: {
      tenantId: string;
      conversationId: string;
      reason: HandoverReason;
      note?: string;
      confidence: number;
    }): Promise<void> {
      const updated = await db
        .update(conversations)
        .set({
          needsHuman: true,
          handoverReason: input.reason,
          handoverNoteEnc: input.note ? keyring.encrypt(input.note) : null,
          handedOverAt: sql`now()`,
          updatedAt: sql`now()`,
        })
        .where(
          and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId), eq(conversations.needsHuman, false)),
        )
        .returning({ id: conversations.id });
      if (updated.length)
        await recordEvent(db, {
          tenantId: input.tenantId,
          conversationId: input.conversationId,
          kind: 'handover',
          detail: { reason: input.reason, confidence: input.confidence },
        });
    },
  };
}
