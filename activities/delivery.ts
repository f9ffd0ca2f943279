import { ApplicationFailure, Context } from '@temporalio/activity';
import { and, eq, sql } from 'drizzle-orm';
import { deliverReply } from '../core/conversation/reply.js';
import type { Db } from '../core/db/client.js';
import { channels, messageMedia } from '../core/db/schema.js';
import type { Keyring } from '../core/platform/crypto.js';
import { DELIVERY_MAX_ATTEMPTS } from '../core/messaging/delivery-policy.js';
import { FailureType } from '../core/platform/errors.js';
import type { PacingOptions } from '../core/providers/pacing.js';
import type { Providers } from '../core/providers/index.js';
import { asActivity } from '../core/temporal/failures.js';

export interface DeliveryDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
  pacing?: Partial<PacingOptions>;
}

export interface DeliverReplyInput {
  tenantId: string;
  messageId: string;
  channelId: string;
  contactId: string;
  conversationId: string;
}

export interface DeliveredReply {
  messageId: string;
  status: 'sent' | 'failed';
  sentAt: string;
  /** How it went out: the free-form text, or the channel's template outside the 24-hour window. */
  via?: 'text' | 'template';
}

export function createDeliveryActivities(outbound: DeliveryDeps) {
  const { db, keyring, providers } = outbound;
  return {
    /**
     * Sends a recorded outbound reply through a real provider, paced to the number's rate. A
     * regular activity: 429/5xx retries (after Retry-After) show in the Temporal UI. Rejections
     * and the last failed attempt are recorded on the message as a failed delivery.
     */
    async deliverReply(input: DeliverReplyInput): Promise<DeliveredReply> {
      return asActivity(() => deliverReply(outbound, input, () => Context.current().info.attempt >= DELIVERY_MAX_ATTEMPTS));
    },

    /** After the last attempt timed out (nothing recorded yet): the reply is a failed delivery. */
    async markDeliveryFailed(input: { tenantId: string; messageId: string }): Promise<void> {
      await db.execute(sql`
        UPDATE messages SET status = 'failed', delivery_status = 'failed', delivery_error_code = 'send_failed', delivery_updated_at = now()
         WHERE tenant_id = ${input.tenantId} AND id = ${input.messageId} AND status = 'sending'`);
    },

    /** Fetches an inbound media item from its provider and keeps it encrypted. */
    async downloadMedia(input: { tenantId: string; mediaId: string }): Promise<{ status: 'downloaded' | 'failed'; sizeBytes?: number }> {
      const [row] = await db
        .select({ media: messageMedia, channel: channels })
        .from(messageMedia)
        .innerJoin(channels, eq(channels.id, messageMedia.channelId))
        .where(and(eq(messageMedia.tenantId, input.tenantId), eq(messageMedia.id, input.mediaId)));
      if (!row) throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'media no longer exists', nonRetryable: true });
      if (row.media.status === 'downloaded') return { status: 'downloaded', sizeBytes: row.media.sizeBytes ?? undefined };
      const provider = providers.forChannel(row.channel);
      if (!provider.downloadMedia) {
        await db.update(messageMedia).set({ status: 'failed' }).where(eq(messageMedia.id, row.media.id));
        return { status: 'failed' };
      }
      try {
        const media = await provider.downloadMedia(row.channel, keyring.decrypt(row.media.refEnc));
        const sealed = keyring.encryptBytes(media.data);
        await db
          .update(messageMedia)
          .set({
            status: 'downloaded',
            contentEnc: sealed.data,
            contentKey: sealed.keyId,
            sizeBytes: media.data.length,
            mimeType: row.media.mimeType ?? media.mimeType ?? null,
            downloadedAt: sql`now()`,
          })
          .where(eq(messageMedia.id, row.media.id));
        return { status: 'downloaded', sizeBytes: media.data.length };
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) {
          await db.update(messageMedia).set({ status: 'failed' }).where(eq(messageMedia.id, row.media.id));
          return { status: 'failed' };
        }
        throw err;
      }
    },
  };
}
