import { ActivityFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import type { DeliverReplyInput, DeliveredReply } from '../activities/delivery.js';
import { DELIVERY_MAX_ATTEMPTS } from '../core/messaging/delivery-policy.js';

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

const { markDeliveryFailed } = proxyLocalActivities<Activities>({ startToCloseTimeout: '15s', retry: { maximumInterval: '10s' } });

/** Sends a queued reply; a rejected or exhausted send is a failed delivery (already recorded), not a failed conversation. */
export async function deliverQueuedReply(input: DeliverReplyInput): Promise<DeliveredReply> {
  try {
    return await deliverReply(input);
  } catch (err) {
    if (err instanceof ActivityFailure) {
      // Rejections and the last failed attempt are recorded by the activity; a timed-out last attempt is not.
      await markDeliveryFailed({ tenantId: input.tenantId, messageId: input.messageId });
      return { messageId: input.messageId, status: 'failed', sentAt: new Date().toISOString() };
    }
    throw err;
  }
}
