/** The conversation workflow (one per tenant, channel and contact) and the activities of its turns. */

import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { LookupTurnPlan } from './data-lookup.js';

/**
 * A turn's folded text is capped: the newest characters are kept, older messages of a burst keep
 * only their ids (the reply still answers them). This bounds every activity input, the workflow's
 * state and what its continue-as-new carries, however long a customer's burst.
 */
export const TURN_TEXT_LIMIT = 16_000;
/** Each remembered exchange is cut to this many characters. */
export const MEMORY_TEXT_LIMIT = 2_000;

export interface InboundMessage {
  id: string;
  seq: number;
  text: string;
  receivedAt: string;
}

export interface InboundBatch {
  messages: InboundMessage[];
  /** Tenant setting at relay time: how long to wait for more messages before answering. */
  debounceMs: number;
}

export interface Exchange {
  role: 'customer' | 'assistant';
  text: string;
  at: string;
}

export interface ConversationInput {
  tenantId: string;
  channelId: string;
  contactId: string;
  conversationId: string;
  /** Inactivity that closes the conversation: WhatsApp's 24-hour customer-service window. */
  windowSeconds: number;
  /** Turns per run before continue-as-new, even if the server does not suggest it yet. */
  turnsPerRun?: number;
  memory?: Exchange[];
  seenIds?: string[];
  pending?: InboundMessage[];
  debounceMs?: number;
  turns?: number;
}

export interface ConversationState {
  pending: number;
  turns: number;
  memory: Exchange[];
  closing: boolean;
}

/** How a legacy turn ended, as the conversation workflow sees it. */
export type JobOutcome =
  { outcome: 'replied'; text: string; sentAt: string } | { outcome: 'completed' } | { outcome: 'failed' } | { outcome: 'timed_out' };

/** n8n answered a legacy job (`/messages/send`, `/queue/jobs/{id}/complete` or `/fail`). */
export type JobAnswer = { jobId: string } & Exclude<JobOutcome, { outcome: 'timed_out' }>;

/** New inbound messages, sent by the outbox relay with signalWithStart. */
export const inboundSignal = defineSignal<[InboundBatch]>('inbound');
/** Sent by the API when n8n answers the job a legacy turn waits for. */
export const jobAnsweredSignal = defineSignal<[JobAnswer]>('jobAnswered');
export const stateQuery = defineQuery<ConversationState>('state');

/** Closes after the customer-service window passes without activity; continues as new every few hundred turns. */
export type ConversationWorkflow = (input: ConversationInput) => Promise<void>;

export interface ConversationRef {
  tenantId: string;
  conversationId: string;
}

export interface PlanTurnInput extends ConversationRef {
  messages: { id: string; text: string }[];
  memory: Exchange[];
}

/** A legacy-mode turn: n8n answers it through the job queue; the workflow waits, then falls back. */
export interface LegacyJobPlan {
  kind: 'legacy_job';
  jobId: string;
  timeoutMs: number;
  fallbackText: string;
}

/**
 * What the workflow does with a turn. Each capability that answers differently
 * (legacy n8n jobs, data lookups, LLM, handover) adds a variant and a case in the workflow.
 */
export type TurnPlan =
  | { kind: 'reply'; text: string; source: 'knowledge' | 'fallback' | 'consent'; knowledgeId?: string }
  /** Ask the tenant's LLM (aiReply activity); `noLlm` answers if it fails, `fallbackText` tells the customer about a handover. */
  | { kind: 'ai'; noLlm: { text: string; source: 'knowledge' | 'fallback'; knowledgeId?: string }; fallbackText: string }
  /** The conversation was handed to a person: the bot stays silent. */
  | { kind: 'human' }
  | LegacyJobPlan
  /** An intent matched: look the answer up in the tenant's data source (workflows/data.ts). */
  | LookupTurnPlan;

export interface SendReplyInput extends ConversationRef {
  channelId: string;
  contactId: string;
  replyKey: string;
  inReplyTo: string[];
  text: string;
  source: string;
  /** Knowledge chunks the reply was grounded in. */
  sourceChunkIds?: string[];
}

export interface SentReply {
  messageId: string;
  /**
   * `queued`: recorded for a real provider; the workflow delivers it with the deliverReply activity.
   * `unknown`: the provider may have taken it and could not tell (docs/providers.md).
   */
  status: 'sent' | 'failed' | 'queued' | 'unknown';
  sentAt: string;
}

export interface AnswerTurnInput extends PlanTurnInput {
  /** Everything sendReply needs but the text, for a turn whose plan is a plain reply. */
  reply: Omit<SendReplyInput, 'text' | 'source' | 'sourceChunkIds'>;
}

export interface AnsweredTurn {
  plan: TurnPlan;
  /** Set when the plan was a plain reply, sent in the same activity. */
  sent?: SentReply;
}

/** A turn whose planning kept failing: recorded as failed and answered with the tenant's fallback. */
export interface FailTurnInput {
  reply: Omit<SendReplyInput, 'text' | 'source' | 'sourceChunkIds'>;
  /** The failure type (or error name) that ended the turn's retries. */
  failureType: string;
}

/** The fallback a failed turn was answered with; null when the tenant or channel is gone. */
export type FailedTurn = { text: string; sent: SentReply } | null;

export interface LegacyJobRef {
  tenantId: string;
  jobId: string;
}
