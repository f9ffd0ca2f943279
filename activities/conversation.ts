import type { Db } from '../core/db/client.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Providers } from '../core/providers/index.js';
import { answerTurn, planTurn } from '../core/conversation/turn.js';
import { sendReply } from '../core/conversation/reply.js';
import { closeConversation } from '../core/conversation/state.js';
import { asActivity } from '../core/temporal/failures.js';
import type { Exchange } from '../workflows/conversation.js';
import type { LegacyJobPlan } from './legacy.js';
import type { LookupTurnPlan } from '../core/data-engine/types.js';

export interface ConversationDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
}

export interface PlanTurnInput {
  tenantId: string;
  conversationId: string;
  messages: { id: string; text: string }[];
  memory: Exchange[];
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

export interface SendReplyInput {
  tenantId: string;
  conversationId: string;
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
  /** `queued`: recorded for a real provider; the workflow delivers it with the deliverReply activity. */
  status: 'sent' | 'failed' | 'queued';
  sentAt: string;
}

export interface AnswerTurnInput extends PlanTurnInput {
  /** Everything sendReply needs but the text, for a turn whose plan is a plain reply. */
  reply: Omit<SendReplyInput, 'text' | 'source' | 'sourceChunkIds'>;
}

export function createConversationActivities(deps: ConversationDeps) {
  return {
    /** How to answer a turn (core/conversation/turn.ts). */
    async planTurn(input: PlanTurnInput): Promise<TurnPlan> {
      return asActivity(() => planTurn(deps, input));
    },

    /** Sends a reply through the outbound module, or queues it for deliverReply (core/conversation/reply.ts). */
    async sendReply(input: SendReplyInput): Promise<SentReply> {
      return asActivity(() => sendReply(deps, input));
    },

    /** planTurn, and for a plain reply sendReply too, in one local activity. */
    async answerTurn(input: AnswerTurnInput): Promise<{ plan: TurnPlan; sent?: SentReply }> {
      return asActivity(() => answerTurn(deps, input));
    },

    async closeConversation(input: { tenantId: string; conversationId: string }): Promise<void> {
      return closeConversation(deps.db, input);
    },
  };
}
