import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

export interface RetrievedChunk {
  chunkId: string;
  documentId: string;
  title: string;
  content: string;
  /** Reciprocal-rank-fusion score of the lists the chunk appears in (or the single list's raw score). */
  score: number;
  /** ts_rank_cd of the full-text match, when it matched. */
  ftsScore: number | null;
  /** Cosine similarity to the question, when a query vector was given. */
  vectorScore: number | null;
}

export type RetrievalMode = 'hybrid' | 'fts' | 'vector';

/** RRF's constant: dampens the weight of the very top ranks (60 is the usual choice). */
const RRF_K = 60;
/** How many candidates each list contributes to the fusion. */
const CANDIDATES = 20;

const vectorColumnCache = new WeakMap<object, Promise<boolean>>();

/** Whether this database has pgvector's `embedding_vec` column (see migrations/0900). */
export function embeddingColumnIsVector(db: Db): Promise<boolean> {
  let cached = vectorColumnCache.get(db);
  if (!cached) {
    cached = db
      .execute<{ n: number }>(
        sql`
        SELECT count(*)::int AS n FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'knowledge_chunks' AND column_name = 'embedding_vec'`,
      )
      .then((r) => r.rows[0].n > 0);
    vectorColumnCache.set(db, cached);
  }
  return cached;
}

type Row = {
  id: string;
  document_id: string;
  title: string;
  content: string;
  score: number;
};

/** What a question contributes to the full-text query, whatever its length. */
export const SEARCH_MAX_CHARS = 4000;

/**
 * Full-text ranking: the question's terms OR-ed, ranked by cover density. Only the first
 * SEARCH_MAX_CHARS characters count, so no question (a burst of 500 long messages folded into
 * one turn) can build a tsquery deep enough to exhaust PostgreSQL's stack.
 */
export async function fullTextSearch(db: Db, tenantId: string, question: string, limit: number): Promise<Row[]> {
  const result = await db.execute<Row>(sql`
    WITH q AS (
      SELECT NULLIF(replace(plainto_tsquery('english', left(${question}, ${SEARCH_MAX_CHARS}))::text, '&', '|'), '')::tsquery AS query
    )
    SELECT c.id, c.document_id, c.title, c.content, ts_rank_cd(c.tsv, q.query, 32)::float8 AS score
    FROM knowledge_chunks c, q
    WHERE c.tenant_id = ${tenantId} AND q.query IS NOT NULL AND c.tsv @@ q.query
    ORDER BY score DESC, c.document_id, c.ord
    LIMIT ${limit}`);
  return result.rows.map((r) => ({ ...r, score: Number(r.score) }));
}

/** Exact cosine similarity (vectors are stored normalised): pgvector where present, arrays otherwise. */
export async function vectorSearch(db: Db, tenantId: string, model: string, vector: number[], limit: number): Promise<Row[]> {
  const literal = `{${vector.join(',')}}`;
  const query = (await embeddingColumnIsVector(db))
    ? sql`
      SELECT id, document_id, title, content, 1 - (embedding_vec <=> ${literal}::real[]::vector) AS score
      FROM knowledge_chunks
      WHERE tenant_id = ${tenantId} AND embedding_model = ${model} AND embedding_vec IS NOT NULL
      ORDER BY embedding_vec <=> ${literal}::real[]::vector
      LIMIT ${limit}`
    : sql`
      SELECT id, document_id, title, content, parley_dot(embedding, ${literal}::real[]) AS score
      FROM knowledge_chunks
      WHERE tenant_id = ${tenantId} AND embedding_model = ${model} AND embedding IS NOT NULL
      ORDER BY score DESC NULLS LAST
      LIMIT ${limit}`;
  const result = await db.execute<Row>(query);
  return result.rows.map((r) => ({ ...r, score: Number(r.score) }));
}

/**
 * The tenant's best chunks for a question. Hybrid fuses the full-text and vector rankings
 * by reciprocal rank; without a query vector it is full-text alone.
 */
export async function retrieve(
  db: Db,
  input: { tenantId: string; question: string; limit?: number; mode?: RetrievalMode; query?: { model: string; vector: number[] } },
): Promise<RetrievedChunk[]> {
  const limit = input.limit ?? 5;
  const mode = input.query ? (input.mode ?? 'hybrid') : 'fts';
  const [fts, vec] = await Promise.all([
    mode === 'vector' ? [] : fullTextSearch(db, input.tenantId, input.question, Math.max(limit, CANDIDATES)),
    mode === 'fts' || !input.query
      ? []
      : vectorSearch(db, input.tenantId, input.query.model, input.query.vector, Math.max(limit, CANDIDATES)),
  ]);
  const byId = new Map<string, RetrievedChunk>();
  const add = (rows: Row[], key: 'ftsScore' | 'vectorScore') =>
    rows.forEach((r, rank) => {
      const hit = byId.get(r.id) ?? {
        chunkId: r.id,
        documentId: r.document_id,
        title: r.title,
        content: r.content,
        score: 0,
        ftsScore: null,
        vectorScore: null,
      };
      hit[key] = r.score;
      hit.score += mode === 'hybrid' ? 1 / (RRF_K + rank + 1) : r.score;
      byId.set(r.id, hit);
    });
  add(fts, 'ftsScore');
  add(vec, 'vectorScore');
  return [...byId.values()].sort((a, b) => b.score - a.score).slice(0, limit);
}
