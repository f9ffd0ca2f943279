import type { AiAnswer, AiReplyInput, HandOverInput } from '../contracts/ai.js';
import { aiReply } from '../core/ai/reply.js';
import type { AiToolSource } from '../core/ai/tools.js';
import { handOver } from '../core/conversation/state.js';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import { asActivity } from '../core/temporal/failures.js';

export interface AiDeps {
  db: Db;
  keyring: Keyring;
  /** Optional AI settings of the worker: tool sources (the Data Engine's lookups) and the provider timeout. */
  ai?: { tools?: AiToolSource[]; requestTimeoutMs?: number };
}

export function createAiActivities({ db, keyring, ai }: AiDeps) {
  return {
    /** One LLM answer for a turn (a regular activity: timeout, retries on 429/5xx, visible in the UI). */
    async aiReply(input: AiReplyInput): Promise<AiAnswer> {
      return asActivity(() => aiReply({ db, keyring, tools: ai?.tools ?? [], timeoutMs: ai?.requestTimeoutMs }, input));
    },

    /** Marks the conversation for a person: the bot stays silent on it from now on. */
    async handOver(input: HandOverInput): Promise<void> {
      return handOver(db, keyring, input);
    },
  };
}
