import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type { SendReplyInput, SentReply } from '../../contracts/conversation.js';
import type { DeliverReplyInput, DeliveredReply } from '../../contracts/delivery.js';
import { channels, contacts, conversations, messages } from '../db/schema.js';
import type { ProviderErrorDetails } from '../providers/http.js';
import { recordSendFailure } from '../messaging/delivery-status.js';
import {
  callProvider,
  checkWindow,
  markOutboundSent,
  outboundKey,
  recordOutbound,
  sendRecorded,
  type OutboundDeps,
} from '../messaging/outbound.js';
import { notFound } from '../platform/errors.js';

/**
 * A conversation reply through the outbound module. Recorded under its reply key before
 * sending, so a retried or replayed turn finds it: a reply already sent is not sent again, one
 * interrupted mid-send is resent with the same provider idempotency key. The sandbox answers
 * at once; a real provider's reply is `queued` for the deliverReply activity (retries, backoff).
 */
export async function sendReply(deps: OutboundDeps, input: SendReplyInput): Promise<SentReply> {
  const { db, keyring } = deps;
  const outbound = await recordOutbound(db, keyring, {
    tenantId: input.tenantId,
    conversationId: input.conversationId,
    dedupeKey: input.replyKey,
    text: input.text,
    inReplyTo: input.inReplyTo,
    replySource: input.source,
    sourceChunkIds: input.sourceChunkIds,
  });
  // Only a retried or replayed turn finds its reply already past 'sending'.
  if (outbound.status !== 'sending') {
    return {
      messageId: outbound.id,
      status: outbound.status === 'failed' ? 'failed' : 'sent',
      sentAt: (outbound.sentAt ?? new Date()).toISOString(),
    };
  }

  const [target] = await db
    .select({ channel: channels, phoneEnc: contacts.phoneEnc, lastInboundAt: conversations.lastInboundAt })
    .from(channels)
    .innerJoin(contacts, eq(contacts.id, input.contactId))
    .innerJoin(conversations, and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)))
    .where(and(eq(channels.id, input.channelId), eq(channels.tenantId, input.tenantId), eq(contacts.tenantId, input.tenantId)));
  if (!target) throw notFound('CHANNEL_NOT_FOUND', 'channel or contact no longer exists');
  // A disabled channel's refusal is recorded as a failed delivery by deliverReply, like any provider's.
  if (target.channel.provider !== 'sandbox' || !target.channel.enabled) {
    return { messageId: outbound.id, status: 'queued', sentAt: new Date().toISOString() };
  }

  const window = checkWindow(target.lastInboundAt, target.channel.reopenTemplate);
  if (window.via === 'closed') {
    await recordSendFailure(db, input.tenantId, outbound.id, 'window_closed', 'outside the 24-hour window and the channel has no template');
    return { messageId: outbound.id, status: 'failed', sentAt: new Date().toISOString() };
  }
  const sent = await sendRecorded(deps, {
    messageId: outbound.id,
    tenantId: input.tenantId,
    channel: target.channel,
    to: keyring.decrypt(target.phoneEnc, { tenantId: input.tenantId, column: contacts.phoneEnc }),
    text: input.text,
    idempotencyKey: outboundKey(input.tenantId, input.replyKey),
    inReplyTo: input.inReplyTo,
    window,
  });
  return { messageId: outbound.id, status: sent.status, sentAt: sent.sentAt.toISOString() };
}

/**
 * A queued reply through a real provider (the deliverReply activity). A closed window without
 * a template is recorded as a failed delivery and sends nothing. A provider error is rethrown
 * for Temporal to retry; a final one (a rejection, or `isLastAttempt`) is first recorded on the
 * message as a failed delivery.
 */
export async function deliverReply(deps: OutboundDeps, input: DeliverReplyInput, isLastAttempt: () => boolean): Promise<DeliveredReply> {
  const { db, keyring } = deps;
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
  if (!row) throw notFound('MESSAGE_NOT_FOUND', 'message, channel or contact no longer exists');
  const { message, channel } = row;
  if (message.status !== 'sending') {
    return {
      messageId: message.id,
      status: message.status === 'failed' ? 'failed' : 'sent',
      sentAt: (message.sentAt ?? message.createdAt).toISOString(),
    };
  }

  const window = checkWindow(row.lastInboundAt, channel.reopenTemplate);
  if (window.via === 'closed') {
    await recordSendFailure(db, input.tenantId, message.id, 'window_closed', 'outside the 24-hour window and the channel has no template');
    return { messageId: message.id, status: 'failed', sentAt: new Date().toISOString(), via: 'text' };
  }
  const inReplyTo = message.inReplyTo ?? [];
  let providerMessageId: string;
  try {
    ({ providerMessageId } = await callProvider(deps, {
      tenantId: input.tenantId,
      channel,
      to: keyring.decrypt(row.phoneEnc, { tenantId: input.tenantId, column: contacts.phoneEnc }),
      text: keyring.decrypt(message.bodyEnc, { tenantId: input.tenantId, column: messages.bodyEnc }),
      idempotencyKey: outboundKey(input.tenantId, message.dedupeKey),
      inReplyTo,
      window,
    }));
  } catch (err) {
    const rejected = err instanceof ApplicationFailure && err.nonRetryable;
    if (rejected || isLastAttempt()) {
      const d = err instanceof ApplicationFailure ? (err.details?.[0] as ProviderErrorDetails | undefined) : undefined;
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
  const sent = await markOutboundSent(db, {
    tenantId: input.tenantId,
    messageId: message.id,
    channel,
    inReplyTo,
    via: window.via,
    providerMessageId,
  });
  return { messageId: message.id, status: sent.status, sentAt: sent.sentAt.toISOString(), via: sent.via };
}
