import type { AiAnswer, AiReplyInput } from '../../contracts/ai.js';
import type { Db } from '../db/client.js';
import type { Keyring } from '../platform/crypto.js';
import { notFound } from '../platform/errors.js';
import { answerWithLlm } from './answer.js';
import { LlmError } from './llm.js';
import { loadAiProfile } from './profile.js';
import type { AiToolSource } from './tools.js';
import { recordEvent } from './usage.js';

/** One LLM answer for a conversation turn, allowed to hand over. An LLM failure is recorded as an event and rethrown. */
export async function aiReply(
  deps: { db: Db; keyring: Keyring; tools: AiToolSource[]; timeoutMs?: number },
  input: AiReplyInput,
): Promise<AiAnswer> {
  const { db } = deps;
  const profile = await loadAiProfile(db, deps.keyring, input.tenantId);
  if (!profile) throw notFound('AI_PROFILE_NOT_FOUND', 'the tenant has no AI profile any more');
  try {
    return await answerWithLlm({ db, tools: deps.tools, timeoutMs: deps.timeoutMs }, profile, {
      conversationId: input.conversationId,
      question: input.question,
      memory: input.memory,
      purpose: 'chat',
      allowHandover: true,
    });
  } catch (err) {
    if (err instanceof LlmError) {
      await recordEvent(db, {
        tenantId: input.tenantId,
        conversationId: input.conversationId,
        kind: 'llm_error',
        detail: { message: err.message, status: err.status ?? null },
      });
    }
    throw err;
  }
}
