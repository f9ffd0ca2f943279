import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { knowledgeEntries } from '../db/schema.js';
import { replaceEntryDocuments } from './documents.js';
import { fullTextSearch } from './retrieval.js';

export interface KnowledgeHit {
  /** The matching chunk (entries and uploaded documents are searched as chunks). */
  id: string;
  documentId: string;
  title: string;
  content: string;
  score: number;
}

/** Below this ts_rank_cd score a match is too thin to answer with. */
export const MIN_KNOWLEDGE_SCORE = 0.05;

/** Replaces the entries and their chunks together; embeddings follow in knowledgeIngestWorkflow. */
export async function replaceKnowledge(db: Db, tenantId: string, entries: { title: string; content: string }[]): Promise<number> {
  await db.transaction(async (tx) => {
    await tx.delete(knowledgeEntries).where(eq(knowledgeEntries.tenantId, tenantId));
    if (entries.length > 0) await tx.insert(knowledgeEntries).values(entries.map((e) => ({ tenantId, ...e })));
    await replaceEntryDocuments(tx as unknown as Db, tenantId, entries);
  });
  return entries.length;
}

/**
 * Full-text search over the tenant's knowledge chunks. The question's terms are OR-ed (a
 * customer's wording rarely contains every word of the answer) and ranked by cover density.
 */
export async function searchKnowledge(db: Db, tenantId: string, question: string, limit = 3): Promise<KnowledgeHit[]> {
  const rows = await fullTextSearch(db, tenantId, question, limit);
  return rows.map((r) => ({ id: r.id, documentId: r.document_id, title: r.title, content: r.content, score: r.score }));
}
