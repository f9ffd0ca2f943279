import { and, eq, gte, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { aiEvents, aiUsage } from '../db/schema.js';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** Budgets run per UTC calendar month. */
export function monthOf(date = new Date()): string {
  return date.toISOString().slice(0, 7);
}

function monthRange(month: string): [Date, Date] {
  const [y, m] = month.split('-').map(Number);
  return [new Date(Date.UTC(y, m - 1, 1)), new Date(Date.UTC(y, m, 1))];
}

export async function recordUsage(
  db: Db,
  input: {
    tenantId: string;
    conversationId?: string | null;
    purpose: 'chat' | 'embedding' | 'ingest' | 'synthesis';
    model: string;
  } & TokenUsage,
): Promise<void> {
  if (input.promptTokens === 0 && input.completionTokens === 0) return;
  await db.insert(aiUsage).values({
    tenantId: input.tenantId,
    conversationId: input.conversationId ?? null,
    purpose: input.purpose,
    model: input.model,
    promptTokens: input.promptTokens,
    completionTokens: input.completionTokens,
  });
}

export async function monthlyUsage(db: Db, tenantId: string, month = monthOf(), conversationId?: string): Promise<TokenUsage> {
  const [from, to] = monthRange(month);
  const [row] = await db
    .select({
      prompt: sql<string>`coalesce(sum(${aiUsage.promptTokens}), 0)`,
      completion: sql<string>`coalesce(sum(${aiUsage.completionTokens}), 0)`,
    })
    .from(aiUsage)
    .where(
      and(
        eq(aiUsage.tenantId, tenantId),
        gte(aiUsage.createdAt, from),
        lt(aiUsage.createdAt, to),
        conversationId ? eq(aiUsage.conversationId, conversationId) : undefined,
      ),
    );
  return { promptTokens: Number(row.prompt), completionTokens: Number(row.completion) };
}

/**
 * True when the month's tokens (chat, query and document embeddings alike) reached the budget.
 * The first time in a month it records a `budget_exhausted` event.
 */
export async function budgetExhausted(db: Db, tenantId: string, budget: number | null): Promise<boolean> {
  if (budget === null) return false;
  const month = monthOf();
  const used = await monthlyUsage(db, tenantId, month);
  if (used.promptTokens + used.completionTokens < budget) return false;
  await recordEvent(db, {
    tenantId,
    kind: 'budget_exhausted',
    detail: { month, budget, used: used.promptTokens + used.completionTokens },
    onceKey: `budget_exhausted:${month}`,
  });
  return true;
}

export async function recordEvent(
  db: Db,
  input: { tenantId: string; conversationId?: string | null; kind: string; detail?: Record<string, unknown>; onceKey?: string },
): Promise<void> {
  await db
    .insert(aiEvents)
    .values({
      tenantId: input.tenantId,
      conversationId: input.conversationId ?? null,
      kind: input.kind,
      detail: input.detail ?? {},
      onceKey: input.onceKey ?? null,
    })
    .onConflictDoNothing();
}
