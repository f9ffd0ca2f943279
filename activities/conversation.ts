import { log } from '@temporalio/activity';
import type { Db } from '../core/db/client.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Providers } from '../core/providers/index.js';
import { answerTurn, planTurn } from '../core/conversation/turn.js';
import { sendReply } from '../core/conversation/reply.js';
import { closeConversation } from '../core/conversation/state.js';
import { failTurn } from '../core/conversation/failed-turn.js';
import { asActivity } from '../core/temporal/failures.js';
import type {
  AnsweredTurn,
  AnswerTurnInput,
  ConversationRef,
  FailedTurn,
  FailTurnInput,
  PlanTurnInput,
  SendReplyInput,
  SentReply,
  TurnPlan,
} from '../contracts/conversation.js';

export interface ConversationDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
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
    async answerTurn(input: AnswerTurnInput): Promise<AnsweredTurn> {
      return asActivity(() => answerTurn(deps, input));
    },

    /** A turn that kept failing: the alert row, an error line, and the fallback reply (core/conversation/failed-turn.ts). */
    async failTurn(input: FailTurnInput): Promise<FailedTurn> {
      log.error('turn failed: answered with the fallback', {
        code: 'TURN_FAILED',
        conversationId: input.reply.conversationId,
        failureType: input.failureType,
        messages: input.reply.inReplyTo.length,
      });
      return asActivity(() => failTurn(deps, input));
    },

    async closeConversation(input: ConversationRef): Promise<void> {
      return closeConversation(deps.db, input);
    },
  };
}
