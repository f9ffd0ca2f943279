import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import { lookupReply, runLookup } from './data.js';

type Activities = ReturnType<typeof createActivities>;

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

export const inboundSignal = defineSignal<[InboundBatch]>('inbound');
export const stateQuery = defineQuery<ConversationState>('state');

/** Memory kept across turns and continue-as-new: the last ten exchanges. */
export const MEMORY_LIMIT = 20;
/** Message ids remembered for de-duplication; the database is the first line, this the second. */
const SEEN_LIMIT = 500;
/** Start a fresh run well before the history gets large, even if the server does not suggest it. */
const TURNS_PER_RUN = 200;

// Short database steps run as local activities: no extra history events or server round trips.
const { planTurn, sendReply, closeConversation } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '15s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: ['BadRequest', 'NotFound'] },
});

export async function conversationWorkflow(input: ConversationInput): Promise<void> {
  const memory: Exchange[] = [...(input.memory ?? [])];
  const seen: string[] = [...(input.seenIds ?? [])];
  const seenSet = new Set(seen);
  const pending: InboundMessage[] = [...(input.pending ?? [])];
  let debounceMs = input.debounceMs ?? 0;
  let turns = input.turns ?? 0;
  let runTurns = 0;
  let closing = false;

  setHandler(inboundSignal, (batch) => {
    debounceMs = batch.debounceMs;
    for (const message of batch.messages) {
      if (seenSet.has(message.id)) continue;
      seenSet.add(message.id);
      seen.push(message.id);
      pending.push(message);
    }
    if (seen.length > SEEN_LIMIT) seen.splice(0, seen.length - SEEN_LIMIT).forEach((id) => seenSet.delete(id));
    pending.sort((a, b) => a.seq - b.seq);
  });
  setHandler(stateQuery, () => ({ pending: pending.length, turns, memory, closing }));

  async function reply(turn: InboundMessage[], text: string, source: string): Promise<void> {
    const sent = await sendReply({
      tenantId: input.tenantId,
      conversationId: input.conversationId,
      channelId: input.channelId,
      contactId: input.contactId,
      // The first message of the turn names the reply: a replayed or retried turn reuses it.
      replyKey: `reply:${turn[0].id}`,
      inReplyTo: turn.map((m) => m.id),
      text,
      source,
    });
    if (sent.status === 'sent') memory.push({ role: 'assistant', text, at: sent.sentAt });
  }

  for (;;) {
    const active = await condition(() => pending.length > 0, input.windowSeconds * 1000);
    if (!active) {
      closing = true;
      await closeConversation({ conversationId: input.conversationId, tenantId: input.tenantId });
      // A message that raced the close is answered, not dropped.
      if (pending.length === 0) return;
      closing = false;
    }
    if (debounceMs > 0) {
      let seenCount = pending.length;
      while (await condition(() => pending.length > seenCount, debounceMs)) seenCount = pending.length;
    }

    const turn = pending.splice(0, pending.length);
    const plan = await planTurn({
      tenantId: input.tenantId,
      conversationId: input.conversationId,
      messages: turn.map((m) => ({ id: m.id, text: m.text })),
      memory,
    });
    for (const m of turn) memory.push({ role: 'customer', text: m.text, at: m.receivedAt });
    switch (plan.kind) {
      case 'reply':
        await reply(turn, plan.text, plan.source);
        break;
      case 'lookup': {
        const outcome = await runLookup(plan.lookup);
        await reply(turn, lookupReply(plan, outcome), outcome.ok ? 'data' : 'data_fallback');
        break;
      }
    }
    if (memory.length > MEMORY_LIMIT) memory.splice(0, memory.length - MEMORY_LIMIT);
    turns++;
    runTurns++;

    if (workflowInfo().continueAsNewSuggested || runTurns >= TURNS_PER_RUN) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof conversationWorkflow>({
        ...input,
        memory,
        seenIds: seen,
        pending,
        debounceMs,
        turns,
      });
    }
  }
}
