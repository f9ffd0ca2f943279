import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import { failDocument } from '../core/knowledge/documents.js';
import { chunkOrFail, embedNextBatch } from '../core/knowledge/ingest-steps.js';
import { asActivity } from '../core/temporal/failures.js';
import type { EmbedBatchResult, FailKnowledgeDocumentInput, KnowledgeDocumentRef } from '../contracts/knowledge.js';

export interface KnowledgeDeps {
  db: Db;
  keyring: Keyring;
  ai?: { requestTimeoutMs?: number };
}

export function createKnowledgeActivities({ db, keyring, ai }: KnowledgeDeps) {
  return {
    /** Extracts and chunks an uploaded document (idempotent: a retry finds the chunks made). */
    async chunkKnowledgeDocument(input: KnowledgeDocumentRef): Promise<{ chunks: number }> {
      return asActivity(() => chunkOrFail(db, input.tenantId, input.documentId));
    },

    /** Embeds the next batch of chunks; each batch is committed, so a retried or restarted ingestion resumes. */
    async embedKnowledgeBatch(input: { tenantId: string; documentId?: string }): Promise<EmbedBatchResult> {
      return asActivity(() => embedNextBatch({ db, keyring, timeoutMs: ai?.requestTimeoutMs }, input));
    },

    async failKnowledgeDocument(input: FailKnowledgeDocumentInput): Promise<void> {
      await failDocument(db, input.tenantId, input.documentId, input.error.slice(0, 500));
    },
  };
}
