import { embedTexts, llmClient } from '../ai/llm.js';
import { loadAiProfile } from '../ai/profile.js';
import { recordUsage } from '../ai/usage.js';
import type { Db } from '../db/client.js';
import type { Keyring } from '../platform/crypto.js';
import { badRequest, notFound } from '../platform/errors.js';
import {
  chunkDocument,
  DocumentGone,
  EMBED_BATCH,
  EmptyDocument,
  failDocument,
  markChunkedReady,
  pendingChunks,
  refreshProgress,
  storeEmbeddings,
} from './documents.js';

/**
 * The steps of a document's ingestion workflow. Chunking is idempotent: a retry finds the chunks
 * made. A file that cannot be read will not become readable: the document is failed, not retried.
 */
export async function chunkOrFail(db: Db, tenantId: string, documentId: string): Promise<{ chunks: number }> {
  try {
    return await chunkDocument(db, tenantId, documentId);
  } catch (err) {
    if (err instanceof DocumentGone) throw notFound('DOCUMENT_NOT_FOUND', err.message);
    const message = err instanceof EmptyDocument ? err.message : `cannot read the document: ${(err as Error).message}`.slice(0, 500);
    await failDocument(db, tenantId, documentId, message);
    throw badRequest('DOCUMENT_UNREADABLE', message);
  }
}

/**
 * Embeds the next batch of chunks without a current embedding (of one document, or all the
 * tenant's). Each batch is committed, so a retried or restarted ingestion resumes. LLM errors
 * propagate as LlmError.
 */
export async function embedNextBatch(
  deps: { db: Db; keyring: Keyring; timeoutMs?: number },
  input: { tenantId: string; documentId?: string },
): Promise<{ embedded: number; more: boolean }> {
  const { db } = deps;
  const profile = await loadAiProfile(db, deps.keyring, input.tenantId);
  if (!profile) {
    await markChunkedReady(db, input.tenantId, input.documentId);
    return { embedded: 0, more: false };
  }
  const batch = await pendingChunks(db, input.tenantId, profile.embeddingModel, input.documentId, EMBED_BATCH);
  if (batch.length === 0) {
    await refreshProgress(db, input.tenantId);
    return { embedded: 0, more: false };
  }
  const client = llmClient(profile, deps.timeoutMs);
  const { vectors, promptTokens } = await embedTexts(
    client,
    profile.embeddingModel,
    batch.map((c) => `${c.title}\n${c.content}`),
  );
  await recordUsage(db, { tenantId: input.tenantId, purpose: 'ingest', model: profile.embeddingModel, promptTokens, completionTokens: 0 });
  await storeEmbeddings(
    db,
    input.tenantId,
    profile.embeddingModel,
    batch.map((c, i) => ({ id: c.id, documentId: c.documentId, vector: vectors[i] })),
  );
  return { embedded: batch.length, more: batch.length === EMBED_BATCH };
}
