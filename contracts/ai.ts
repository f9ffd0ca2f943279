/** The LLM answer of a conversation turn (aiReply) and the handover it may ask for (handOver). */

/** One exchange of the conversation as the prompt shows it. */
export interface MemoryTurn {
  role: 'customer' | 'assistant';
  text: string;
}

export interface AnswerSource {
  chunk_id: string;
  document_id: string;
  score: number;
}

export type HandoverReason = 'model_requested' | 'low_confidence';

export type AiAnswer =
  | { kind: 'answer'; text: string; confidence: number; sources: AnswerSource[]; blocked?: boolean }
  /** `note` is the model's own words (may echo the customer): stored encrypted only. */
  | { kind: 'handover'; reason: HandoverReason; note?: string; confidence: number; sources: AnswerSource[] };

export interface AiReplyInput {
  tenantId: string;
  conversationId: string;
  question: string;
  memory: MemoryTurn[];
}

export interface HandOverInput {
  tenantId: string;
  conversationId: string;
  reason: HandoverReason;
  note?: string;
  confidence: number;
}
