import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type { SendReplyInput, SentReply } from '../../contracts/conversation.js';
import type { DeliverReplyInput, DeliveredReply } from '../../contracts/delivery.js';
import { channels, contacts, conversations, messages } from '../db/schema.js';
import type { ProviderErrorDetails } from '../providers/http.js';
import { recordSendFailure } from '../messaging/delivery-status.js';
import { beginAttempt, clearAttempt, concludeUnknown, mayHaveReached, outcomeUnknown, reconcileSend } from '../messaging/reconcile.js';
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
      status: outbound.status === 'failed' || outbound.status === 'unknown' ? outbound.status : 'sent',
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
 * A queued reply through a real provider (the deliverReply activity). A provider call is marked
 * on the record before it starts; a retry that finds the mark of a call that may have reached
 * the provider reconciles it before sending again (core/messaging/reconcile.ts), so a slow but
 * successful send never reaches the customer twice. A closed window without a template is
 * recorded as a failed delivery and sends nothing. A provider error is rethrown for Temporal to
 * retry; a rejection, or the last attempt's failure when the provider surely did not take the
 * message, is first recorded as a failed delivery. What is still unknown on the last attempt is
 * recorded as `unknown`, never `failed`.
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
      status: message.status === 'failed' || message.status === 'unknown' ? message.status : 'sent',
      sentAt: (message.sentAt ?? message.createdAt).toISOString(),
    };
  }

  const to = keyring.decrypt(row.phoneEnc, { tenantId: input.tenantId, column: contacts.phoneEnc });
  const text = keyring.decrypt(message.bodyEnc, { tenantId: input.tenantId, column: messages.bodyEnc });
  const inReplyTo = message.inReplyTo ?? [];
  const window = checkWindow(row.lastInboundAt, channel.reopenTemplate);
  const sent = async (providerMessageId: string, via: 'text' | 'template'): Promise<DeliveredReply> => {
    const done = await markOutboundSent(deps, {
      tenantId: input.tenantId,
      messageId: message.id,
      channel,
      inReplyTo,
      via,
      providerMessageId,
    });
    return { messageId: message.id, status: done.status, sentAt: done.sentAt.toISOString(), via: done.via };
  };
  const unknown = async (): Promise<DeliveredReply> => {
    await concludeUnknown(db, input.tenantId, message.id);
    return { messageId: message.id, status: 'unknown', sentAt: new Date().toISOString() };
  };

  let mayHaveIt = false;
  if (message.sendStartedAt) {
    const found = await reconcileSend(deps, {
      tenantId: input.tenantId,
      messageId: message.id,
      channel,
      to,
      text: window.via === 'template' ? undefined : text,
      startedAt: message.sendStartedAt,
    });
    if (found.outcome === 'sent') return sent(found.providerMessageId, window.via === 'template' ? 'template' : 'text');
    if (found.outcome === 'waiting' && !isLastAttempt()) throw outcomeUnknown(channel.provider, found.retryInMs);
    if (found.outcome !== 'resend') return unknown();
    mayHaveIt = found.mayHaveIt;
  }

  if (window.via === 'closed') {
    // The window closed since an earlier call the provider may have taken: that one is not `failed`.
    if (mayHaveIt) return unknown();
    await recordSendFailure(db, input.tenantId, message.id, 'window_closed', 'outside the 24-hour window and the channel has no template');
    return { messageId: message.id, status: 'failed', sentAt: new Date().toISOString(), via: 'text' };
  }
  let providerMessageId: string;
  try {
    ({ providerMessageId } = await callProvider(
      deps,
      { tenantId: input.tenantId, channel, to, text, idempotencyKey: outboundKey(input.tenantId, message.dedupeKey), inReplyTo, window },
      () => beginAttempt(db, message.id),
    ));
  } catch (err) {
    const reached = mayHaveReached(err);
    if (!reached) await clearAttempt(db, message.id);
    const rejected = err instanceof ApplicationFailure && err.nonRetryable;
    if (!rejected && isLastAttempt() && (reached || mayHaveIt)) return unknown();
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
  return sent(providerMessageId, window.via);
}
