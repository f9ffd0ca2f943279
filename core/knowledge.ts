import { eq, sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { knowledgeEntries } from './db/schema.js';

export interface KnowledgeHit {
  id: string;
  title: string;
  content: string;
  score: number;
}

/** Below this ts_rank_cd score a match is too thin to answer with. */
export const MIN_KNOWLEDGE_SCORE = 0.05;

export async function replaceKnowledge(db: Db, tenantId: string, entries: { title: string; content: string }[]): Promise<number> {
  await db.transaction(async (tx) => {
    await tx.delete(knowledgeEntries).where(eq(knowledgeEntries.tenantId, tenantId));
    if (entries.length > 0) await tx.insert(knowledgeEntries).values(entries.map((e) => ({ tenantId, ...e })));
  });
  return entries.length;
}

/**
 * Full-text search over the tenant's entries. The question's terms are OR-ed (a customer's
 * wording rarely contains every word of the answer) and ranked by cover density.
 */
export async function searchKnowledge(db: Db, tenantId: string, question: string, limit = 3): Promise<KnowledgeHit[]> {
  const result = await db.execute<{ id: string; title: string; content: string; score: number }>(sql`
    WITH q AS (
      SELECT NULLIF(replace(plainto_tsquery('english', ${question})::text, '&', '|'), '')::tsquery AS query
    )
    SELECT k.id, k.title, k.content, ts_rank_cd(k.tsv, q.query, 32)::float8 AS score
    FROM ${knowledgeEntries} k, q
    WHERE k.tenant_id = ${tenantId} AND q.query IS NOT NULL AND k.tsv @@ q.query
    ORDER BY score DESC, k.created_at
    LIMIT ${limit}`);
  return result.rows.map((r) => ({ ...r, score: Number(r.score) }));
}
