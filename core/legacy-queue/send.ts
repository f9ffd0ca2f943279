import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { channels, contacts, conversations, jobs, messages, type Channel, type Job } from '../db/schema.js';
import {
  callProvider,
  checkWindow,
  markOutboundSent,
  outboundKey,
  recordOutbound,
  type OutboundDeps,
  type RecordedOutbound,
  type WindowDecision,
} from '../messaging/outbound.js';
import type { Keyring } from '../platform/crypto.js';
import { AppError, badRequest, conflict, notFound } from '../platform/errors.js';
import { conversationWorkflowId } from '../platform/ids.js';
import { sendCapReached, tenantSendCap } from '../messaging/send-cap.js';
import { maxConcurrentSends } from '../tenants/settings.js';
import { jobClosed, jobNotFound } from './jobs.js';

export interface LegacySend {
  tenantId: string;
  to: string;
  text: string;
  jobId?: string;
}

export interface LegacySent {
  messageId: string;
  sentAt: string;
  /** The free text, or the channel's reopen template when the 24-hour window had closed. */
  via: 'text' | 'template';
  /** The conversation workflow waiting for this answer, when the send answered its job. */
  workflowId: string | null;
}

interface Target {
  channel: Channel;
  conversationId: string;
  lastInboundAt: Date | null;
}

/** What one transaction prepares and commits before the provider is called. */
interface Prepared {
  target: Target;
  window: Exclude<WindowDecision, { via: 'closed' }>;
  record: RecordedOutbound;
  dedupeKey: string;
  inReplyTo: string[];
  /** The job as it was before this send answered it, to reopen it if the provider fails. */
  job?: Job;
}

export const windowClosed = () =>
  conflict(
    'WINDOW_CLOSED',
    'to: the customer has not written in the last 24 hours and the channel has no reopen template; nothing was sent',
  );

/**
 * `POST /messages/send` through the outbound module. One transaction checks the job (locking
 * its row, so a second send for it or the conversation's timeout waits and then finds it
 * answered), finds the customer's conversation, checks the 24-hour window, records the
 * outbound message and marks the job answered. Only after that commit is the provider called,
 * in the number's send slot, and the message marked sent. A closed window without a template
 * is 409 WINDOW_CLOSED and changes nothing. If the provider fails, the job is reopened and its
 * message removed, so n8n can retry the send or the conversation fall back as before; the
 * retry reuses the job's reply key, which is also the provider's idempotency key.
 * The whole send holds one of the tenant's send slots (messaging/send-cap.ts): a tenant at its
 * cap gets 429 SEND_CAP_REACHED before anything is read or written.
 */
export async function sendLegacyMessage(deps: OutboundDeps, input: LegacySend): Promise<LegacySent> {
  const limit = await maxConcurrentSends(deps.db, input.tenantId);
  const outcome = await tenantSendCap.run(input.tenantId, limit, () => sendInSlot(deps, input));
  if (outcome.capped) throw sendCapReached(limit);
  return outcome.value;
}

async function sendInSlot(deps: OutboundDeps, input: LegacySend): Promise<LegacySent> {
  const prepared = await deps.db.transaction(async (txn) => {
    const tx = txn as unknown as Db;
    return input.jobId ? prepareJobAnswer(tx, deps.keyring, input, input.jobId) : prepareUnprompted(tx, deps.keyring, input);
  });
  const { target, window, record } = prepared;
  const workflowId = prepared.job?.workflowId ?? null;
  if (record.status === 'sent') {
    return { messageId: record.id, sentAt: (record.sentAt ?? new Date()).toISOString(), via: window.via, workflowId };
  }
  let providerMessageId: string;
  try {
    ({ providerMessageId } = await callProvider(deps, {
      tenantId: input.tenantId,
      channel: target.channel,
      to: input.to,
      text: input.text,
      idempotencyKey: outboundKey(input.tenantId, prepared.dedupeKey),
      inReplyTo: prepared.inReplyTo,
      window,
    }));
  } catch (err) {
    await undoUnsent(deps.db, input.tenantId, record.id, prepared.job);
    throw new AppError(
      502,
      'PROVIDER_FAILED',
      `the ${target.channel.provider} provider did not accept the message (${(err as Error).name}); retry the send`,
    );
  }
  // Past this point the message is out: nothing is undone, whatever happens to the bookkeeping.
  const sent = await markOutboundSent(deps, {
    tenantId: input.tenantId,
    messageId: record.id,
    channel: target.channel,
    inReplyTo: prepared.inReplyTo,
    via: window.via,
    providerMessageId,
  });
  return { messageId: record.id, sentAt: sent.sentAt.toISOString(), via: sent.via, workflowId };
}

async function prepareJobAnswer(tx: Db, keyring: Keyring, input: LegacySend, jobId: string): Promise<Prepared> {
  const [job] = await tx
    .select()
    .from(jobs)
    .where(and(eq(jobs.tenantId, input.tenantId), eq(jobs.id, jobId)))
    .for('update');
  if (!job) throw jobNotFound(jobId);
  if (job.status !== 'queued' && job.status !== 'processing') throw jobClosed(jobId, job.status);

  let target: Target;
  if (job.conversationId) {
    const [row] = await tx
      .select({ channel: channels, phoneHash: contacts.phoneHash, lastInboundAt: conversations.lastInboundAt })
      .from(conversations)
      .innerJoin(channels, eq(channels.id, conversations.channelId))
      .innerJoin(contacts, eq(contacts.id, conversations.contactId))
      .where(and(eq(conversations.tenantId, input.tenantId), eq(conversations.id, job.conversationId)));
    if (!row) throw notFound('CONVERSATION_NOT_FOUND', `job_id: the conversation of job "${jobId}" no longer exists`);
    // A job's answer goes to the customer who asked; anything else is a misrouted reply.
    if (row.phoneHash !== keyring.blindIndex(input.to)) {
      throw badRequest('TO_MISMATCH', `to: is not the customer who sent job "${jobId}"`);
    }
    target = { channel: row.channel, conversationId: job.conversationId, lastInboundAt: row.lastInboundAt };
  } else {
    target = await ensureConversation(tx, keyring, input.tenantId, input.to);
  }
  const window = checkWindow(target.lastInboundAt, target.channel.reopenTemplate);
  if (window.via === 'closed') throw windowClosed();

  const dedupeKey = job.replyKey ?? `job:${job.id}`;
  const inReplyTo = job.messageIds ?? [];
  const record = await recordOutbound(tx, keyring, {
    tenantId: input.tenantId,
    conversationId: target.conversationId,
    dedupeKey,
    text: input.text,
    inReplyTo,
    replySource: 'n8n',
  });
  await tx
    .update(jobs)
    .set({ status: 'completed', replyMessageId: record.id, leaseExpiresAt: null, finishedAt: sql`now()`, updatedAt: sql`now()` })
    .where(eq(jobs.id, job.id));
  return { target, window, record, dedupeKey, inReplyTo, job };
}

/** A send that answers no job (the seed's plain `{ to, message, tenant_id }`). */
async function prepareUnprompted(tx: Db, keyring: Keyring, input: LegacySend): Promise<Prepared> {
  const target = await ensureConversation(tx, keyring, input.tenantId, input.to);
  const window = checkWindow(target.lastInboundAt, target.channel.reopenTemplate);
  if (window.via === 'closed') throw windowClosed();
  const dedupeKey = `send:${randomUUID()}`;
  const record = await recordOutbound(tx, keyring, {
    tenantId: input.tenantId,
    conversationId: target.conversationId,
    dedupeKey,
    text: input.text,
    inReplyTo: [],
    replySource: 'n8n',
  });
  return { target, window, record, dedupeKey, inReplyTo: [] };
}

/**
 * The provider did not take the message. An unprompted send stays recorded as `failed`. A job's
 * answer is undone in one transaction, as if it had never been sent: the message goes and the
 * job is open again, unless the conversation's timeout or another send got to it meanwhile.
 */
async function undoUnsent(db: Db, tenantId: string, messageId: string, job: Job | undefined): Promise<void> {
  if (!job) {
    await db
      .update(messages)
      .set({ status: 'failed' })
      .where(and(eq(messages.id, messageId), eq(messages.status, 'sending')));
    return;
  }
  await db.transaction(async (txn) => {
    const tx = txn as unknown as Db;
    const reopened = await tx
      .update(jobs)
      .set({ status: job.status, replyMessageId: null, leaseExpiresAt: job.leaseExpiresAt, finishedAt: null, updatedAt: sql`now()` })
      .where(and(eq(jobs.id, job.id), eq(jobs.status, 'completed'), eq(jobs.replyMessageId, messageId)))
      .returning({ id: jobs.id });
    if (reopened.length) {
      await tx.delete(messages).where(and(eq(messages.tenantId, tenantId), eq(messages.id, messageId), eq(messages.status, 'sending')));
    } else {
      await tx
        .update(messages)
        .set({ status: 'failed' })
        .where(and(eq(messages.id, messageId), eq(messages.status, 'sending')));
    }
  });
}

/** The customer's conversation on the tenant's default channel, created if this is the first contact. */
async function ensureConversation(db: Db, keyring: Keyring, tenantId: string, phone: string): Promise<Target> {
  const [channel] = await db
    .select()
    .from(channels)
    .where(and(eq(channels.tenantId, tenantId), eq(channels.isDefault, true)));
  if (!channel) throw notFound('CHANNEL_NOT_FOUND', 'tenant_id: the tenant has no default channel to send from');
  const phoneHash = keyring.blindIndex(phone);
  await db
    .insert(contacts)
    .values({ tenantId, phoneHash, phoneEnc: keyring.encrypt(phone, { tenantId, column: contacts.phoneEnc }) })
    .onConflictDoNothing({ target: [contacts.tenantId, contacts.phoneHash] });
  const [contact] = await db
    .select({ id: contacts.id })
    .from(contacts)
    .where(and(eq(contacts.tenantId, tenantId), eq(contacts.phoneHash, phoneHash)));
  await db
    .insert(conversations)
    .values({
      tenantId,
      channelId: channel.id,
      contactId: contact.id,
      workflowId: conversationWorkflowId(tenantId, channel.id, contact.id),
    })
    .onConflictDoNothing({ target: [conversations.tenantId, conversations.channelId, conversations.contactId] });
  const [conversation] = await db
    .select({ id: conversations.id, lastInboundAt: conversations.lastInboundAt })
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.channelId, channel.id), eq(conversations.contactId, contact.id)));
  return { channel, conversationId: conversation.id, lastInboundAt: conversation.lastInboundAt };
}
