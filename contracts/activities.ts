import type { AiAnswer, AiReplyInput, HandOverInput } from './ai.js';
import type {
  AnsweredTurn,
  AnswerTurnInput,
  ConversationRef,
  FailedTurn,
  FailTurnInput,
  JobOutcome,
  LegacyJobRef,
  PlanTurnInput,
  SendReplyInput,
  SentReply,
  TurnPlan,
} from './conversation.js';
import type { DataLookupInput, DataSourceRef, LookupResult, RecordLookupInput } from './data-lookup.js';
import type { DeliveredReply, DeliverReplyInput, MarkDeliveryFailedInput, MediaDownloadInput, MediaDownloadResult } from './delivery.js';
import type { DeliverEventInput, EventAttemptOutcome } from './events.js';
import type { EmbedBatchResult, FailKnowledgeDocumentInput, KnowledgeDocumentRef } from './knowledge.js';
import type { FinishPulseRunInput, PulsePageInput, PulsePageResult, PulseRunConfig, RunCounts, StartPulseRunInput } from './pulse.js';
import type { PurgeCounts } from './retention.js';

/**
 * Every activity the workflows schedule, by the name it is registered under. Workflows proxy
 * this interface; activities/index.ts builds an object checked against it.
 * (Function-typed properties, not methods, so parameter types are checked strictly.)
 */
export interface Activities {
  /** Decides how to answer a turn. */
  planTurn: (input: PlanTurnInput) => Promise<TurnPlan>;
  /** Records a reply under its reply key, then sends it (sandbox) or leaves it queued for deliverReply. */
  sendReply: (input: SendReplyInput) => Promise<SentReply>;
  /** planTurn, and for a plain reply sendReply too. */
  answerTurn: (input: AnswerTurnInput) => Promise<AnsweredTurn>;
  /** A turn whose planning kept failing: records the alert row and sends the tenant's fallback. */
  failTurn: (input: FailTurnInput) => Promise<FailedTurn>;
  closeConversation: (input: ConversationRef) => Promise<void>;
  /** The workflow stopped waiting for n8n: closes the job, or reports the answer that won the race. */
  settleLegacyJob: (input: LegacyJobRef) => Promise<JobOutcome>;
  aiReply: (input: AiReplyInput) => Promise<AiAnswer>;
  handOver: (input: HandOverInput) => Promise<void>;

  deliverReply: (input: DeliverReplyInput) => Promise<DeliveredReply>;
  markDeliveryFailed: (input: MarkDeliveryFailedInput) => Promise<void>;
  downloadMedia: (input: MediaDownloadInput) => Promise<MediaDownloadResult>;

  dataLookup: (input: DataLookupInput) => Promise<LookupResult>;
  /** Writes the audit row of a lookup that failed or ran elsewhere; returns its wait since `startedAt`. */
  recordLookup: (input: RecordLookupInput) => Promise<number>;
  testDataSource: (input: DataSourceRef) => Promise<{ latencyMs: number }>;

  chunkKnowledgeDocument: (input: KnowledgeDocumentRef) => Promise<{ chunks: number }>;
  embedKnowledgeBatch: (input: { tenantId: string; documentId?: string }) => Promise<EmbedBatchResult>;
  failKnowledgeDocument: (input: FailKnowledgeDocumentInput) => Promise<void>;

  /** Snapshots the campaign and opens the run row; null when the campaign was deleted meanwhile. */
  startPulseRun: (input: StartPulseRunInput) => Promise<PulseRunConfig | null>;
  sendPulsePage: (input: PulsePageInput) => Promise<PulsePageResult>;
  finishPulseRun: (input: FinishPulseRunInput) => Promise<RunCounts | null>;

  purgeExpiredData: () => Promise<PurgeCounts>;

  /** One signed HTTP attempt of an outbound event delivery. */
  deliverEvent: (input: DeliverEventInput) => Promise<EventAttemptOutcome>;
}

/** The lookup activities a tenant's own data worker serves, under the same names. */
