import { ApplicationFailure } from '@temporalio/activity';
import { embedTexts, LlmError, llmClient } from '../core/ai/llm.js';
import { loadAiProfile } from '../core/ai/profile.js';
import { recordUsage } from '../core/ai/usage.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import { FailureType } from '../core/platform/errors.js';
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
} from '../core/knowledge/documents.js';

export interface KnowledgeDeps {
  db: Db;
  keyring: Keyring;
  ai?: { requestTimeoutMs?: number };
}

export interface EmbedBatchResult {
  embedded: number;
  /** False once nothing is left to embed (or the tenant has no embeddings endpoint). */
  more: boolean;
}

export function createKnowledgeActivities({ db, keyring, ai }: KnowledgeDeps) {
  return {
    /** Extracts and chunks an uploaded document (idempotent: a retry finds the chunks made). */
    async chunkKnowledgeDocument(input: { tenantId: string; documentId: string }): Promise<{ chunks: number }> {
      try {
        return await chunkDocument(db, input.tenantId, input.documentId);
      } catch (err) {
        if (err instanceof DocumentGone)
          throw ApplicationFailure.create({ type: FailureType.NotFound, message: err.message, nonRetryable: true });
        // A file that cannot be read will not become readable: fail the document, not the worker.
        const message = err instanceof EmptyDocument ? err.message : `cannot read the document: ${(err as Error).message}`.slice(0, 500);
        await failDocument(db, input.tenantId, input.documentId, message);
        throw ApplicationFailure.create({ type: FailureType.BadRequest, message, nonRetryable: true });
      }
    },

    /**
     * Embeds the next batch of chunks without a current embedding (of one document, or all
     * the tenant's). Each batch is committed, so a retried or restarted ingestion resumes.
     */
    async embedKnowledgeBatch(input: { tenantId: string; documentId?: string }): Promise<EmbedBatchResult> {
      const profile = await loadAiProfile(db, keyring, input.tenantId);
      if (!profile) {
        await markChunkedReady(db, input.tenantId, input.documentId);
        return { embedded: 0, more: false };
      }
      const batch = await pendingChunks(db, input.tenantId, profile.embeddingModel, input.documentId, EMBED_BATCH);
      if (batch.length === 0) {
        await refreshProgress(db, input.tenantId);
        return { embedded: 0, more: false };
      }
      try {
        const client = llmClient(profile, ai?.requestTimeoutMs);
        const { vectors, promptTokens } = await embedTexts(
          client,
          profile.embeddingModel,
          batch.map((c) => `${c.title}\n${c.content}`),
        );
        await recordUsage(db, {
          tenantId: input.tenantId,
          purpose: 'ingest',
          model: profile.embeddingModel,
          promptTokens,
          completionTokens: 0,
        });
        await storeEmbeddings(
          db,
          input.tenantId,
          profile.embeddingModel,
          batch.map((c, i) => ({ id: c.id, documentId: c.documentId, vector: vectors[i] })),
        );
      } catch (err) {
        if (!(err instanceof LlmError)) throw err;
        throw ApplicationFailure.create({
          type: err.failureType ?? (err.retryable ? FailureType.LlmUnavailable : FailureType.BadRequest),
          message: err.message,
          nonRetryable: !err.retryable,
        });
      }
      return { embedded: batch.length, more: batch.length === EMBED_BATCH };
    },

    async failKnowledgeDocument(input: { tenantId: string; documentId?: string; error: string }): Promise<void> {
      await failDocument(db, input.tenantId, input.documentId, input.error.slice(0, 500));
    },
  };
}
