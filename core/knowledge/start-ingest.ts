import type { Client } from '@temporalio/client';
import type { KnowledgeIngestWorkflow } from '../../contracts/knowledge.js';

/**
 * Starts ingestion: per uploaded document, or tenant-wide for entries and re-embedding. A
 * tenant-wide run replaces one in progress (its committed batches stay), so chunks added
 * meanwhile are never missed.
 */
export async function startKnowledgeIngest(
  temporal: Client,
  taskQueue: string,
  input: { tenantId: string; documentId?: string },
): Promise<string> {
  const workflowId = input.documentId ? `knowledge-doc-${input.documentId}` : `knowledge-embed-${input.tenantId}`;
  await temporal.workflow.start<KnowledgeIngestWorkflow>('knowledgeIngestWorkflow', {
    taskQueue,
    workflowId,
    args: [input],
    workflowIdConflictPolicy: input.documentId ? 'USE_EXISTING' : 'TERMINATE_EXISTING',
  });
  return workflowId;
}
