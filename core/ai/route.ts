import type { Db } from '../db/client.js';
import { budgetExhausted } from './usage.js';

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
