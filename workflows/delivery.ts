import { ActivityFailure, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { DeliverReplyInput, DeliveredReply } from '../activities/delivery.js';
import { DELIVERY_MAX_ATTEMPTS } from '../core/delivery-policy.js';

type Activities = ReturnType<typeof createActivities>;

// Real-provider sends are regular activities: retries, backoff and Retry-After show in the Temporal UI.
const { deliverReply } = proxyActivities<Activities>({
  startToCloseTimeout: '60s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '60s',
    maximumAttempts: DELIVERY_MAX_ATTEMPTS,
    nonRetryableErrorTypes: ['BadRequest', 'NotFound', 'ProviderRejected'],
  },
});

/** Sends a queued reply; a rejected or exhausted send is a failed delivery (already recorded), not a failed conversation. */
export async function deliverQueuedReply(input: DeliverReplyInput): Promise<DeliveredReply> {
  try {
    return await deliverReply(input);
  } catch (err) {
    if (err instanceof ActivityFailure) return { messageId: input.messageId, status: 'failed', sentAt: new Date().toISOString() };
    throw err;
  }
}
