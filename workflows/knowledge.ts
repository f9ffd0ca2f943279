import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import { FailureType } from '../contracts/failures.js';
import type { KnowledgeIngestWorkflow } from '../contracts/knowledge.js';
import { DOCUMENT_STEP_RETRY, EMBEDDING_RETRY } from '../contracts/retry-policies.js';

const { chunkKnowledgeDocument, failKnowledgeDocument } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: DOCUMENT_STEP_RETRY,
});
const { embedKnowledgeBatch } = proxyActivities<Activities>({ startToCloseTimeout: '2m', retry: EMBEDDING_RETRY });

/**
 * Ingests knowledge: extract and chunk (once), then embed batch after batch. Every batch is
 * committed by its activity, so progress shows in GET …/documents/{id} and a failed or
 * restarted run resumes where it stopped.
 */
export const knowledgeIngestWorkflow: KnowledgeIngestWorkflow = async (input) => {
  let chunks = 0;
  if (input.documentId) {
    ({ chunks } = await chunkKnowledgeDocument({ tenantId: input.tenantId, documentId: input.documentId }));
  }
  let embedded = 0;
  try {
    for (;;) {
      const batch = await embedKnowledgeBatch({ tenantId: input.tenantId, documentId: input.documentId });
      embedded += batch.embedded;
      if (!batch.more) break;
    }
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    await failKnowledgeDocument({
      tenantId: input.tenantId,
      documentId: input.documentId,
      error: `embedding failed (${cause}); full-text search still finds its chunks`,
    });
    throw ApplicationFailure.create({ type: FailureType.EmbeddingFailed, message: 'embedding did not complete', nonRetryable: true });
  }
  return { chunks, embedded };
};
