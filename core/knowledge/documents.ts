import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { extractText as extractPdfText, getDocumentProxy } from 'unpdf';
import type { Db } from '../db/client.js';
import { knowledgeChunks, knowledgeDocuments } from '../db/schema.js';
import { linear } from '../platform/linear-regex.js';
import { embeddingColumnIsVector } from './retrieval.js';

/** Chunks of about this many characters, each repeating the end of the previous one. */
export const CHUNK_CHARS = 1200;
export const CHUNK_OVERLAP = 200;
/** Chunks per embeddings request. */
export const EMBED_BATCH = 32;

export const DOCUMENT_TYPES = {
  'text/plain': 'text',
  'text/markdown': 'markdown',
  'text/html': 'html',
  'application/pdf': 'pdf',
} as const;
export type DocumentMime = keyof typeof DOCUMENT_TYPES;

/** The document type from its declared type, else its file name. */
export function documentMime(declared: string | undefined, filename: string | undefined): DocumentMime | undefined {
  const base = declared?.split(';')[0].trim().toLowerCase();
  if (base && base in DOCUMENT_TYPES) return base as DocumentMime;
  const ext = filename?.toLowerCase().split('.').pop();
  if (ext === 'pdf') return 'application/pdf';
  if (ext === 'md' || ext === 'markdown') return 'text/markdown';
  if (ext === 'html' || ext === 'htm') return 'text/html';
  if (ext === 'txt' || ext === 'text') return 'text/plain';
  if (base === 'text/x-markdown') return 'text/markdown';
  return undefined;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/*
 * Documents come from tenants and URLs: every pattern that scans to a closing delimiter runs
 * on RE2, so an unclosed `<`, `<!--` or `[` repeated 100 000 times costs linear time, not
 * quadratic backtracking. RE2 has no backreferences: each paired element is spelled out.
 */
const HIDDEN_ELEMENT = linear(['script', 'style', 'noscript', 'template'].map((tag) => `<${tag}[\\s\\S]*?</${tag}>`).join('|'), 'gi');
const COMMENT = linear('<!--[\\s\\S]*?-->', 'g');
const BLOCK_END = linear('<(?:br|/p|/div|/li|/h[1-6]|/tr|/section|/article)\\b[^>]*>', 'gi');
const TAG = linear('<[^>]+>', 'g');
const IMAGE = linear('!\\[([^\\]]*)\\]\\([^)]*\\)', 'g');
const LINK = linear('\\[([^\\]]+)\\]\\([^)]*\\)', 'g');
const EMPHASIS = linear(['\\*\\*', '__', '\\*', '_', '`'].map((mark) => `${mark}(\\S[\\s\\S]*?)${mark}`).join('|'), 'g');

export function htmlToText(html: string): string {
  const stripped = TAG.replace(BLOCK_END.replace(COMMENT.replace(HIDDEN_ELEMENT.replace(html, ' '), ' '), '\n'), ' ');
  // Linear on V8 too: each attempt starts at "&" and its loops stop at the next non-letter.
  return stripped.replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

export function markdownToText(md: string): string {
  const unlinked = LINK.replace(IMAGE.replace(md.replace(/```[a-z]*\n?/gi, ''), '$1'), '$1')
    .replace(/^\s{0,3}#{1,6}\s+/gm, '')
    .replace(/^\s{0,3}>\s?/gm, '');
  // One group per delimiter; the groups that did not match substitute as empty.
  return EMPHASIS.replace(unlinked, '$1$2$3$4$5');
}

/** Plain text of a document; PDFs through unpdf (pdf.js bundled, nothing fetched at run time). */
export async function extractDocumentText(mime: DocumentMime, raw: Uint8Array): Promise<string> {
  if (mime === 'application/pdf') {
    const pdf = await getDocumentProxy(new Uint8Array(raw));
    const { text } = await extractPdfText(pdf, { mergePages: true });
    return text;
  }
  const text = Buffer.from(raw).toString('utf8');
  if (mime === 'text/html') return htmlToText(text);
  if (mime === 'text/markdown') return markdownToText(text);
  return text;
}

/**
 * Splits text into chunks of about `size` characters at paragraph, sentence or word
 * boundaries; each chunk starts with the last `overlap` characters of the previous one, so
 * an answer that straddles a boundary is whole in at least one chunk.
 */
export function chunkText(text: string, size = CHUNK_CHARS, overlap = CHUNK_OVERLAP): string[] {
  const clean = text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t\f\v]+/g, ' ')
    .replace(/\n\s*\n\s*/g, '\n\n')
    .trim();
  if (!clean) return [];
  if (clean.length <= size) return [clean];
  const chunks: string[] = [];
  let start = 0;
  while (start < clean.length) {
    let end = Math.min(start + size, clean.length);
    if (end < clean.length) {
      const window = clean.slice(start, end);
      const cut = [window.lastIndexOf('\n\n'), window.lastIndexOf('. '), window.lastIndexOf('\n'), window.lastIndexOf(' ')].find(
        (i) => i > size / 2,
      );
      if (cut !== undefined) end = start + cut + 1;
    }
    chunks.push(clean.slice(start, end).trim());
    if (end >= clean.length) break;
    let next = end - overlap;
    const space = clean.indexOf(' ', next);
    if (space !== -1 && space < end) next = space + 1;
    start = Math.max(next, start + 1);
  }
  return chunks.filter(Boolean);
}

export async function createUploadDocument(
  db: Db,
  tenantId: string,
  doc: { title: string; mime: DocumentMime; raw: Buffer },
): Promise<string> {
  const [row] = await db
    .insert(knowledgeDocuments)
    .values({ tenantId, kind: 'upload', title: doc.title, mime: doc.mime, raw: doc.raw })
    .returning({ id: knowledgeDocuments.id });
  return row.id;
}

/**
 * Extracts and chunks a document once: a retried or resumed ingestion finds the chunks
 * already there (status past 'chunking') and goes on embedding.
 */
export async function chunkDocument(db: Db, tenantId: string, documentId: string): Promise<{ chunks: number }> {
  return db.transaction(async (tx) => {
    const [doc] = await tx
      .select()
      .from(knowledgeDocuments)
      .where(and(eq(knowledgeDocuments.id, documentId), eq(knowledgeDocuments.tenantId, tenantId)))
      .for('update');
    if (!doc) throw new DocumentGone(documentId);
    if (doc.status !== 'queued' && doc.status !== 'chunking') return { chunks: doc.chunksTotal };
    const text = doc.raw ? await extractDocumentText(doc.mime as DocumentMime, doc.raw) : '';
    const pieces = chunkText(text);
    if (pieces.length === 0) throw new EmptyDocument('the document has no text to index (a scanned PDF needs OCR first)');
    await tx.delete(knowledgeChunks).where(eq(knowledgeChunks.documentId, documentId));
    await tx.insert(knowledgeChunks).values(pieces.map((content, ord) => ({ tenantId, documentId, ord, title: doc.title, content })));
    await tx
      .update(knowledgeDocuments)
      .set({ status: 'embedding', chunksTotal: pieces.length, raw: null, updatedAt: sql`now()` })
      .where(eq(knowledgeDocuments.id, documentId));
    return { chunks: pieces.length };
  });
}

export class DocumentGone extends Error {
  constructor(id: string) {
    super(`document ${id} no longer exists`);
  }
}
export class EmptyDocument extends Error {}

/** Chunks still to embed for a model: of one document, or of the whole tenant. */
export async function pendingChunks(db: Db, tenantId: string, model: string, documentId: string | undefined, limit: number) {
  return db
    .select({
      id: knowledgeChunks.id,
      documentId: knowledgeChunks.documentId,
      title: knowledgeChunks.title,
      content: knowledgeChunks.content,
    })
    .from(knowledgeChunks)
    .where(
      and(
        eq(knowledgeChunks.tenantId, tenantId),
        documentId ? eq(knowledgeChunks.documentId, documentId) : undefined,
        sql`(${knowledgeChunks.embedding} IS NULL OR ${knowledgeChunks.embeddingModel} IS DISTINCT FROM ${model})`,
      ),
    )
    .orderBy(asc(knowledgeChunks.documentId), asc(knowledgeChunks.ord))
    .limit(limit);
}

/**
 * Stores one batch of embeddings and recounts its documents' progress. The documents are
 * locked first (in id order), so concurrent batches of one document (its own ingestion and a
 * tenant-wide re-embedding) count each other's committed work instead of overwriting it.
 */
export async function storeEmbeddings(
  db: Db,
  tenantId: string,
  model: string,
  rows: { id: string; documentId: string; vector: number[] }[],
): Promise<void> {
  const vectorColumn = await embeddingColumnIsVector(db);
  const documentIds = [...new Set(rows.map((r) => r.documentId))].sort();
  await db.transaction(async (tx) => {
    await tx
      .select({ id: knowledgeDocuments.id })
      .from(knowledgeDocuments)
      .where(and(eq(knowledgeDocuments.tenantId, tenantId), inArray(knowledgeDocuments.id, documentIds)))
      .orderBy(asc(knowledgeDocuments.id))
      .for('update');
    for (const row of rows) {
      const literal = `{${row.vector.join(',')}}`;
      await tx.execute(sql`
        UPDATE knowledge_chunks SET embedding = ${literal}::real[], embedding_model = ${model}
          ${vectorColumn ? sql`, embedding_vec = ${literal}::real[]::vector` : sql``}
        WHERE id = ${row.id} AND tenant_id = ${tenantId}`);
    }
    await refreshProgress(tx as unknown as Db, tenantId, documentIds);
  });
}

/** Recounts embedded chunks of the given documents (or all the tenant's) and marks finished ones ready. */
export async function refreshProgress(db: Db, tenantId: string, documentIds?: string[]): Promise<void> {
  const only = documentIds
    ? sql`AND document_id IN (${sql.join(
        documentIds.map((id) => sql`${id}::uuid`),
        sql`, `,
      )})`
    : sql``;
  await db.execute(sql`
    UPDATE knowledge_documents d SET
      chunks_embedded = s.embedded,
      status = CASE WHEN d.status = 'embedding' AND s.embedded >= d.chunks_total THEN 'ready' ELSE d.status END,
      updated_at = now()
    FROM (
      SELECT document_id, count(*) FILTER (WHERE embedding IS NOT NULL)::int AS embedded
      FROM knowledge_chunks WHERE tenant_id = ${tenantId} ${only} GROUP BY document_id
    ) s
    WHERE d.id = s.document_id AND d.tenant_id = ${tenantId}`);
}

/** Without an embeddings endpoint a document is ready once chunked: full-text search alone. */
export async function markChunkedReady(db: Db, tenantId: string, documentId?: string): Promise<void> {
  await db
    .update(knowledgeDocuments)
    .set({ status: 'ready', updatedAt: sql`now()` })
    .where(
      and(
        eq(knowledgeDocuments.tenantId, tenantId),
        eq(knowledgeDocuments.status, 'embedding'),
        documentId ? eq(knowledgeDocuments.id, documentId) : undefined,
      ),
    );
}

/** Fails one document, or (without an id) every document of the tenant still waiting for embeddings. */
export async function failDocument(db: Db, tenantId: string, documentId: string | undefined, error: string): Promise<void> {
  await db
    .update(knowledgeDocuments)
    .set({ status: 'failed', error, raw: null, updatedAt: sql`now()` })
    .where(
      and(
        eq(knowledgeDocuments.tenantId, tenantId),
        documentId ? eq(knowledgeDocuments.id, documentId) : eq(knowledgeDocuments.status, 'embedding'),
      ),
    );
}

/** After a model change, every chunk is embedded again: documents go back to 'embedding'. */
export async function resetEmbeddings(db: Db, tenantId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.update(knowledgeChunks).set({ embedding: null, embeddingModel: null }).where(eq(knowledgeChunks.tenantId, tenantId));
    // Documents whose embedding failed get another chance with the new endpoint or model.
    await tx
      .update(knowledgeDocuments)
      .set({ status: 'embedding', chunksEmbedded: 0, error: null, updatedAt: sql`now()` })
      .where(
        and(
          eq(knowledgeDocuments.tenantId, tenantId),
          sql`${knowledgeDocuments.status} IN ('ready', 'failed') AND ${knowledgeDocuments.chunksTotal} > 0`,
        ),
      );
  });
}

/**
 * The tenant's PUT …/knowledge entries as documents of kind 'entry', one per entry, chunked
 * like uploads (inside the caller's transaction, so entries and chunks change together).
 */
export async function replaceEntryDocuments(tx: Db, tenantId: string, entries: { title: string; content: string }[]): Promise<void> {
  await tx.delete(knowledgeDocuments).where(and(eq(knowledgeDocuments.tenantId, tenantId), eq(knowledgeDocuments.kind, 'entry')));
  for (const entry of entries) {
    const pieces = chunkText(entry.content);
    const [doc] = await tx
      .insert(knowledgeDocuments)
      .values({ tenantId, kind: 'entry', title: entry.title, mime: 'text/plain', status: 'ready', chunksTotal: pieces.length })
      .returning({ id: knowledgeDocuments.id });
    if (pieces.length) {
      await tx
        .insert(knowledgeChunks)
        .values(pieces.map((content, ord) => ({ tenantId, documentId: doc.id, ord, title: entry.title, content })));
    }
  }
}

export async function hasPendingChunks(db: Db, tenantId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: knowledgeChunks.id })
    .from(knowledgeChunks)
    .where(and(eq(knowledgeChunks.tenantId, tenantId), isNull(knowledgeChunks.embedding)))
    .limit(1);
  return !!row;
}
