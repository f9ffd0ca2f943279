/** Knowledge ingestion: extract and chunk a document, then embed batch after batch. */

export interface KnowledgeIngestInput {
  tenantId: string;
  /** An uploaded document to extract and chunk first; without it, every chunk of the tenant still to embed. */
  documentId?: string;
}

export interface KnowledgeIngestResult {
  chunks: number;
  embedded: number;
}

export type KnowledgeIngestWorkflow = (input: KnowledgeIngestInput) => Promise<KnowledgeIngestResult>;

export interface KnowledgeDocumentRef {
  tenantId: string;
  documentId: string;
}

export interface EmbedBatchResult {
  embedded: number;
  /** False once nothing is left to embed (or the tenant has no embeddings endpoint). */
  more: boolean;
}

export interface FailKnowledgeDocumentInput {
  tenantId: string;
  documentId?: string;
  error: string;
}
