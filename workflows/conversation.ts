import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import {
  inboundSignal,
  jobAnsweredSignal,
  stateQuery,
  type ConversationWorkflow,
  type Exchange,
  type InboundMessage,
  type JobAnswer,
  type AnsweredTurn,
  type SentReply,
  MEMORY_TEXT_LIMIT,
  TURN_TEXT_LIMIT,
} from '../contracts/conversation.js';
import { DATABASE_STEP_RETRY, LLM_REPLY_RETRY, TURN_STEP_RETRY } from '../contracts/retry-policies.js';
import { deliverQueuedReply } from './delivery.js';
import { lookupReply, runLookup } from './data.js';

/** Memory kept across turns and continue-as-new: the last ten exchanges. */
export const MEMORY_LIMIT = 20;
/** Message ids remembered for de-duplication; the database is the first line, this the second. */
const SEEN_LIMIT = 500;
/** Start a fresh run well before the history gets large (about 10 events a turn). */
const DEFAULT_TURNS_PER_RUN = 200;
/** Answers kept for jobs not (or no longer) awaited: an answer can arrive before its turn waits. */
const ANSWERS_LIMIT = 20;

// Short database steps run as local activities: no extra history events or server round trips.
const { sendReply, closeConversation, settleLegacyJob, handOver, failTurn } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '15s',
  retry: DATABASE_STEP_RETRY,
});
// Planning reads the turn's own text: a step that keeps failing on it ends, and failTurn answers.
const { answerTurn, planTurn } = proxyLocalActivities<Activities>({ startToCloseTimeout: '15s', retry: TURN_STEP_RETRY });

/**
 * Caps the pending messages' text at TURN_TEXT_LIMIT characters, the newest kept: older messages
 * of a burst keep their ids (the turn's reply answers them) and lose their text.
 */
function capPendingText(pending: InboundMessage[]): void {
  let left = TURN_TEXT_LIMIT;
  for (let i = pending.length - 1; i >= 0; i--) {
    const m = pending[i];
    if (m.text.length > left) pending[i] = { ...m, text: m.text.slice(0, left) };
    left -= pending[i].text.length;
  }
}

/** What ended a failed turn's retries (a local activity's failure arrives unwrapped), as its type: never its message. */
const failureTypeOf = (err: ActivityFailure | ApplicationFailure): string => {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? 'ApplicationFailure') : (cause?.name ?? 'Error');
};

/** A remembered exchange, its text cut to MEMORY_TEXT_LIMIT. */
const remember = (role: Exchange['role'], text: string, at: string): Exchange => ({ role, text: text.slice(0, MEMORY_TEXT_LIMIT), at });

// LLM calls are regular activities (visible in the UI): throttling and outages are retried
// briefly, then the turn falls back to the no-LLM answer instead of keeping the customer waiting.
const { aiReply } = proxyActivities<Activities>({
  startToCloseTimeout: '60s',
  scheduleToCloseTimeout: '90s',
  retry: LLM_REPLY_RETRY,
});

export const conversationWorkflow: ConversationWorkflow = async (input) => {
  const memory: Exchange[] = [...(input.memory ?? [])];
  const seen: string[] = [...(input.seenIds ?? [])];
  const seenSet = new Set(seen);
  const pending: InboundMessage[] = [...(input.pending ?? [])];
  capPendingText(pending);
  let debounceMs = input.debounceMs ?? 0;
  let turns = input.turns ?? 0;
  let runTurns = 0;
  let closing = false;
  const answers = new Map<string, JobAnswer>();

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
    capPendingText(pending);
  });
  setHandler(jobAnsweredSignal, (answer) => {
    answers.set(answer.jobId, answer);
    if (answers.size > ANSWERS_LIMIT) answers.delete(answers.keys().next().value!);
  });
  setHandler(stateQuery, () => ({ pending: pending.length, turns, memory, closing }));

  /** Who a turn's reply goes to and what it answers; the first message names it, so a replayed or retried turn reuses it. */
  const replyTarget = (turn: InboundMessage[]) => ({
    tenantId: input.tenantId,
    conversationId: input.conversationId,
    channelId: input.channelId,
    contactId: input.contactId,
    replyKey: `reply:${turn[0].id}`,
    inReplyTo: turn.map((m) => m.id),
  });

  async function reply(turn: InboundMessage[], text: string, source: string, sourceChunkIds?: string[]): Promise<void> {
    await afterSend(await sendReply({ ...replyTarget(turn), text, source, sourceChunkIds }), text);
  }

  /** A reply recorded for a real provider is delivered by its own activity; a sent one joins the memory. */
  async function afterSend(recorded: SentReply, text: string): Promise<void> {
    let sent = recorded;
    if (sent.status === 'queued') {
      sent = await deliverQueuedReply({
        tenantId: input.tenantId,
        messageId: sent.messageId,
        channelId: input.channelId,
        contactId: input.contactId,
        conversationId: input.conversationId,
      });
    }
    if (sent.status === 'sent') memory.push(remember('assistant', text, sent.sentAt));
  }

  /** Carries out a turn's plan; `sent` is the plain reply answerTurn already sent. */
  async function carryOut(turn: InboundMessage[], { plan, sent }: AnsweredTurn): Promise<void> {
    switch (plan.kind) {
      case 'reply':
        if (sent) await afterSend(sent, plan.text);
        else await reply(turn, plan.text, plan.source, plan.knowledgeId ? [plan.knowledgeId] : undefined);
        break;
      case 'ai': {
        const answer = await aiReply({
          tenantId: input.tenantId,
          conversationId: input.conversationId,
          question: turn
            .filter((m) => m.text)
            .map((m) => m.text)
            .join('\n'),
          memory: memory.slice(0, memory.length - turn.filter((m) => m.text).length).map(({ role, text }) => ({ role, text })),
        }).catch((err: unknown) => {
          // The LLM stayed unavailable through the retries: answer without it.
          if (err instanceof ActivityFailure) return undefined;
          throw err;
        });
        if (!answer) {
          await reply(turn, plan.noLlm.text, plan.noLlm.source, plan.noLlm.knowledgeId ? [plan.noLlm.knowledgeId] : undefined);
        } else if (answer.kind === 'handover') {
          await handOver({
            tenantId: input.tenantId,
            conversationId: input.conversationId,
            reason: answer.reason,
            note: answer.note,
            confidence: answer.confidence,
          });
          await reply(turn, plan.fallbackText, 'handover');
        } else {
          if (answer.blocked) await reply(turn, plan.fallbackText, 'fallback');
          else
            await reply(
              turn,
              answer.text,
              'ai',
              answer.sources.map((s) => s.chunk_id),
            );
        }
        break;
      }
      case 'human':
        break;
      case 'legacy_job': {
        // n8n answers through the API, which signals here; past the timeout the job is closed
        // (a late answer gets 409) unless the answer won that race, and the fallback goes out.
        const answered = await condition(() => answers.has(plan.jobId), plan.timeoutMs);
        const outcome = answered ? answers.get(plan.jobId)! : await settleLegacyJob({ tenantId: input.tenantId, jobId: plan.jobId });
        answers.delete(plan.jobId);
        if (outcome.outcome === 'replied') memory.push(remember('assistant', outcome.text, outcome.sentAt));
        else if (outcome.outcome !== 'completed') await reply(turn, plan.fallbackText, 'fallback');
        break;
      }
      case 'lookup': {
        const outcome = await runLookup(plan.lookup);
        await reply(turn, lookupReply(plan, outcome), outcome.ok ? 'data' : 'data_fallback');
        break;
      }
    }
  }

  // One timer per quiet period instead of one per turn: each turn would otherwise start and
  // cancel a timer, two more history events and server writes for every message.
  const windowMs = input.windowSeconds * 1000;
  let lastActivity = Date.now();
  let timerFired = false;
  const armTimer = (delayMs: number) => void sleep(delayMs).then(() => (timerFired = true));
  armTimer(windowMs);

  for (;;) {
    await condition(() => pending.length > 0 || timerFired);
    if (pending.length === 0) {
      timerFired = false;
      const remaining = lastActivity + windowMs - Date.now();
      if (remaining > 0) {
        armTimer(remaining);
        continue;
      }
      closing = true;
      await closeConversation({ conversationId: input.conversationId, tenantId: input.tenantId });
      // A message that raced the close is answered, not dropped.
      if (pending.length === 0) return;
      closing = false;
      armTimer(windowMs);
    }
    if (debounceMs > 0) {
      let seenCount = pending.length;
      while (await condition(() => pending.length > seenCount, debounceMs)) seenCount = pending.length;
    }

    const turn = pending.splice(0, pending.length);
    lastActivity = Date.now();
    const planInput = {
      tenantId: input.tenantId,
      conversationId: input.conversationId,
      messages: turn.map((m) => ({ id: m.id, text: m.text })),
      memory,
    };
    let planned: AnsweredTurn | undefined;
    let failure = '';
    try {
      // Runs that started before answerTurn existed replay their planTurn + sendReply markers.
      planned = patched('answer-turn') ? await answerTurn({ ...planInput, reply: replyTarget(turn) }) : { plan: await planTurn(planInput) };
    } catch (err) {
      // Before this patch a failed turn failed the run: those histories must still replay so.
      if (!(err instanceof ActivityFailure || err instanceof ApplicationFailure) || !patched('failed-turn')) throw err;
      failure = failureTypeOf(err);
    }
    for (const m of turn) if (m.text) memory.push(remember('customer', m.text, m.receivedAt));
    if (planned) {
      await carryOut(turn, planned);
    } else {
      const fallback = await failTurn({ reply: replyTarget(turn), failureType: failure });
      if (fallback) await afterSend(fallback.sent, fallback.text);
    }
    if (memory.length > MEMORY_LIMIT) memory.splice(0, memory.length - MEMORY_LIMIT);
    turns++;
    runTurns++;

    if (workflowInfo().continueAsNewSuggested || runTurns >= (input.turnsPerRun ?? DEFAULT_TURNS_PER_RUN)) {
      await condition(allHandlersFinished);
      await continueAsNew<ConversationWorkflow>({
        ...input,
        memory,
        seenIds: seen,
        pending,
        debounceMs,
        turns,
      });
    }
  }
};
