import { Context } from '@temporalio/activity';
import { deliverReply } from '../core/conversation/reply.js';
import type { Db } from '../core/db/client.js';
import type { Keyring } from '../core/platform/crypto.js';
import {
  DELIVERY_MAX_ATTEMPTS,
  type DeliveredReply,
  type DeliverReplyInput,
  type MarkDeliveryFailedInput,
  type MediaDownloadInput,
  type MediaDownloadResult,
} from '../contracts/delivery.js';
import { downloadMedia } from '../core/messaging/media.js';
import { markOutboundFailed } from '../core/messaging/outbound.js';
import type { PacingOptions } from '../core/providers/pacing.js';
import type { Providers } from '../core/providers/index.js';
import { asActivity } from '../core/temporal/failures.js';

export interface DeliveryDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
  pacing?: Partial<PacingOptions>;
}

export function createDeliveryActivities(outbound: DeliveryDeps) {
  const { db } = outbound;
  return {
    /**
     * Sends a recorded outbound reply through a real provider, paced to the number's rate. A
     * regular activity: 429/5xx retries (after Retry-After) and the reconciliation of a send whose
     * outcome is unknown show in the Temporal UI. Rejections and the last failed attempt are
     * recorded on the message as a failed delivery; a send still unknown as `unknown`, logged as
     * a warning to alert on.
     */
    async deliverReply(input: DeliverReplyInput): Promise<DeliveredReply> {
      const result = await asActivity(() => deliverReply(outbound, input, () => Context.current().info.attempt >= DELIVERY_MAX_ATTEMPTS));
      if (result.status === 'unknown') {
        Context.current().log.warn('outbound send outcome unknown', { tenantId: input.tenantId, messageId: input.messageId });
      }
      return result;
    },

    /** After the last attempt timed out (nothing recorded yet): a failed delivery, or `unknown` if a call may have gone out. */
    async markDeliveryFailed(input: MarkDeliveryFailedInput): Promise<void> {
      await markOutboundFailed(db, input.tenantId, input.messageId);
    },

    /** Fetches an inbound media item from its provider and keeps it encrypted. */
    async downloadMedia(input: MediaDownloadInput): Promise<MediaDownloadResult> {
      return asActivity(() => downloadMedia(outbound, input));
    },
  };
}
