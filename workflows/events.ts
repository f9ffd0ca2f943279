import { allHandlersFinished, condition, continueAsNew, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import { eventDeliveriesSignal, type EventDeliveryRef, type EventDeliveryWorkflow } from '../contracts/events.js';
import { EVENT_ATTEMPT_RETRY } from '../contracts/retry-policies.js';

// The 10 s receiver timeout plus the database around it.
const { deliverEvent } = proxyActivities<Activities>({ startToCloseTimeout: '30s', retry: EVENT_ATTEMPT_RETRY });

/** An idle workflow ends after this long; the next event starts a new one. */
const IDLE_MS = 5 * 60_000;
/** Deliveries per run before continuing as new, to keep histories short. */
const PER_RUN = 200;

/**
 * Delivers the events of one endpoint and conversation one after another: the next waits until
 * the previous was delivered or failed. Each HTTP attempt is an activity; the wait between
 * attempts is a timer, so retries, backoff and Retry-After show in the Temporal UI.
 */
export const eventDeliveryWorkflow: EventDeliveryWorkflow = async (input) => {
  const queue: EventDeliveryRef[] = [...(input.pending ?? [])];
  const queued = (r: EventDeliveryRef) => queue.some((q) => q.id === r.id && q.generation === r.generation);
  setHandler(eventDeliveriesSignal, ({ deliveries }) => {
    for (const d of deliveries) if (!queued(d)) queue.push(d);
  });

  let done = 0;
  while (done < PER_RUN && !workflowInfo().continueAsNewSuggested) {
    if (!(await condition(() => queue.length > 0, IDLE_MS))) break;
    const delivery = queue[0];
    const firstAttemptAt = new Date().toISOString();
    for (let attempt = 1; ; attempt++) {
      const outcome = await deliverEvent({ ...delivery, attempt, firstAttemptAt });
      if (outcome.kind !== 'retry') break;
      await sleep(outcome.delayMs);
    }
    queue.shift();
    done++;
  }
  await condition(allHandlersFinished);
  if (queue.length > 0) await continueAsNew<EventDeliveryWorkflow>({ ...input, pending: queue });
};
