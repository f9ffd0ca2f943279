import { ApplicationFailure, Context } from '@temporalio/activity';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../core/db/client.js';
import { channels, contacts, conversations, messageMedia, messages } from '../core/db/schema.js';
import type { Keyring } from '../core/platform/crypto.js';
import { applyDeliveryStatus, recordSendFailure } from '../core/messaging/delivery-status.js';
import { SERVICE_WINDOW_MS } from '../core/messaging/delivery-policy.js';
import {
  DELIVERY_MAX_ATTEMPTS,
  type DeliveredReply,
  type DeliverReplyInput,
  type MarkDeliveryFailedInput,
  type MediaDownloadInput,
  type MediaDownloadResult,
} from '../contracts/delivery.js';
import { FailureType } from '../core/platform/errors.js';
import { withSendSlot, type PacingOptions } from '../core/providers/pacing.js';
import type { ProviderErrorDetails } from '../core/providers/http.js';
import type { Providers } from '../core/providers/index.js';

export interface DeliveryDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
  pacing?: Partial<PacingOptions>;
}

const DEFAULT_PACING: PacingOptions = { maxWaitMs: 20_000, toleranceMs: 20 };

function failureDetails(err: unknown): ProviderErrorDetails | undefined {
  return err instanceof ApplicationFailure ? (err.details?.[0] as ProviderErrorDetails | undefined) : undefined;
}

export function createDeliveryActivities({ db, keyring, providers, pacing }: DeliveryDeps) {
  const pacingOptions = { ...DEFAULT_PACING, ...pacing };
  return {
    /**
     * Sends a recorded outbound reply through a real provider, paced to the number's rate. A
     * regular activity: 429/5xx retries (after Retry-After) show in the Temporal UI. Rejections
     * and the last failed attempt are recorded on the message as a failed delivery.
     */
    async deliverReply(input: DeliverReplyInput): Promise<DeliveredReply> {
      const [row] = await db
        .select({ message: messages, channel: channels, phoneEnc: contacts.phoneEnc, lastInboundAt: conversations.lastInboundAt })
        .from(messages)
        .innerJoin(conversations, eq(conversations.id, messages.conversationId))
        .innerJoin(channels, eq(channels.id, input.channelId))
        .innerJoin(contacts, eq(contacts.id, input.contactId))
        .where(
          and(
            eq(messages.tenantId, input.tenantId),
            eq(messages.id, input.messageId),
            eq(channels.tenantId, input.tenantId),
            eq(contacts.tenantId, input.tenantId),
          ),
        );
      if (!row)
        throw ApplicationFailure.create({
          type: FailureType.NotFound,
          message: 'message, channel or contact no longer exists',
          nonRetryable: true,
        });
      const { message, channel } = row;
      if (message.status !== 'sending') {
        return {
          messageId: message.id,
          status: message.status === 'failed' ? 'failed' : 'sent',
          sentAt: (message.sentAt ?? message.createdAt).toISOString(),
        };
      }

      const windowOpen = row.lastInboundAt !== null && Date.now() - row.lastInboundAt.getTime() < SERVICE_WINDOW_MS;
      const template = channel.reopenTemplate;
      if (!windowOpen && !template) {
        await recordSendFailure(
          db,
          input.tenantId,
          message.id,
          'window_closed',
          'outside the 24-hour window and the channel has no template',
        );
        return { messageId: message.id, status: 'failed', sentAt: new Date().toISOString(), via: 'text' };
      }

      const provider = providers.forChannel(channel);
      const base = {
        tenantId: input.tenantId,
        channel,
        to: keyring.decrypt(row.phoneEnc),
        idempotencyKey: `${input.tenantId}:${message.dedupeKey}`,
        inReplyTo: message.inReplyTo ?? [],
      };
      const via = windowOpen ? 'text' : 'template';
      let providerMessageId: string;
      try {
        const result = await withSendSlot(db, channel.id, channel.ratePerSecond, pacingOptions, () => {
          if (via === 'text') return provider.sendText({ ...base, text: keyring.decrypt(message.bodyEnc) });
          if (!provider.sendTemplate) {
            throw ApplicationFailure.create({
              type: FailureType.ProviderRejected,
              nonRetryable: true,
              message: `${provider.name} cannot send templates`,
              details: [{ provider: provider.name, code: 'template_unsupported' }],
            });
          }
          return provider.sendTemplate({ ...base, template: { name: template!.name, language: template!.language } });
        });
        providerMessageId = result.providerMessageId;
      } catch (err) {
        const lastAttempt = Context.current().info.attempt >= DELIVERY_MAX_ATTEMPTS;
        const rejected = err instanceof ApplicationFailure && err.nonRetryable;
        if (rejected || lastAttempt) {
          const d = failureDetails(err);
          await recordSendFailure(
            db,
            input.tenantId,
            message.id,
            d?.code ?? (d?.httpStatus ? `http_${d.httpStatus}` : 'send_failed'),
            d?.title,
          );
        }
        throw err;
      }

      const [updated] = await db
        .update(messages)
        .set({
          status: 'sent',
          providerMessageId,
          sentAt: sql`now()`,
          replySource: via === 'template' ? sql`coalesce(${messages.replySource}, '') || ':template'` : messages.replySource,
        })
        .where(and(eq(messages.id, message.id), eq(messages.status, 'sending')))
        .returning({ sentAt: messages.sentAt });
      // A status callback may have beaten this response: fold in whatever already arrived.
      await applyDeliveryStatus(db, input.tenantId, providerMessageId);
      if (message.inReplyTo?.length) {
        await db
          .update(messages)
          .set({ status: 'answered' })
          .where(and(eq(messages.tenantId, input.tenantId), inArray(messages.id, message.inReplyTo)));
      }
      const [final] = await db.select({ status: messages.status }).from(messages).where(eq(messages.id, message.id));
      return {
        messageId: message.id,
        status: final?.status === 'failed' ? 'failed' : 'sent',
        sentAt: (updated?.sentAt ?? new Date()).toISOString(),
        via,
      };
    },

    /** After the last attempt timed out (nothing recorded yet): the reply is a failed delivery. */
    async markDeliveryFailed(input: MarkDeliveryFailedInput): Promise<void> {
      await db.execute(sql`
        UPDATE messages SET status = 'failed', delivery_status = 'failed', delivery_error_code = 'send_failed', delivery_updated_at = now()
         WHERE tenant_id = ${input.tenantId} AND id = ${input.messageId} AND status = 'sending'`);
    },

    /** Fetches an inbound media item from its provider and keeps it encrypted. */
    async downloadMedia(input: MediaDownloadInput): Promise<MediaDownloadResult> {
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
