import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';

type Activities = ReturnType<typeof createActivities>;

export interface KnowledgeIngestInput {
  tenantId: string;
  /** An uploaded document to extract and chunk first; without it, every chunk of the tenant still to embed. */
  documentId?: string;
}

const { chunkKnowledgeDocument, failKnowledgeDocument } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: ['BadRequest', 'NotFound'] },
});

// Embedding batches go to the tenant's provider: throttling and outages are waited out.
const { embedKnowledgeBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    maximumAttempts: 12,
    nonRetryableErrorTypes: ['BadRequest', 'NotFound'],
  },
});

/**
 * Ingests knowledge: extract and chunk (once), then embed batch after batch. Every batch is
 * committed by its activity, so progress shows in GET …/documents/{id} and a failed or
 * restarted run resumes where it stopped.
 */
export async function knowledgeIngestWorkflow(input: KnowledgeIngestInput): Promise<{ chunks: number; embedded: number }> {
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
    throw ApplicationFailure.create({ type: 'EmbeddingFailed', message: 'embedding did not complete', nonRetryable: true });
  }
  return { chunks, embedded };
}
