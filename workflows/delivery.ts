import { ActivityFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import type { DeliverReplyInput, DeliveredReply } from '../contracts/delivery.js';
import { MARK_FAILED_RETRY, PROVIDER_SEND_RETRY } from '../contracts/retry-policies.js';

// Real-provider sends are regular activities: retries, backoff and Retry-After show in the Temporal UI.
const { deliverReply } = proxyActivities<Activities>({ startToCloseTimeout: '60s', retry: PROVIDER_SEND_RETRY });

const { markDeliveryFailed } = proxyLocalActivities<Activities>({ startToCloseTimeout: '15s', retry: MARK_FAILED_RETRY });

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
