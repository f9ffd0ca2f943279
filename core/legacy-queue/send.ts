import { randomUUID } from 'node:crypto';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { channels, contacts, conversations, jobs, messages, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { AppError, badRequest, notFound } from '../platform/errors.js';
import { conversationWorkflowId } from '../platform/ids.js';
import type { Providers } from '../providers/index.js';
import { jobClosed, jobNotFound } from './jobs.js';

export interface SendDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
}

export interface LegacySend {
  tenantId: string;
  to: string;
  text: string;
  jobId?: string;
}

export interface LegacySent {
  messageId: string;
  sentAt: string;
  /** The conversation workflow waiting for this answer, when the send answered its job. */
  workflowId: string | null;
}

/**
 * `POST /messages/send`: sends through the tenant's provider and records the message in the
 * customer's conversation. With a job id the send answers that job: the job row stays locked
 * from the check to the commit, so a second send for the job (or the conversation's timeout)
 * waits and then finds it answered. The provider call happens inside that window; its
 * idempotency key is the job's reply key, so a send retried after a failed commit is not
 * delivered twice.
 */
export async function sendLegacyMessage(deps: SendDeps, input: LegacySend): Promise<LegacySent> {
  if (!input.jobId) return sendUnprompted(deps, input);
  const jobId = input.jobId;
  return deps.db.transaction(async (txn) => {
    const tx = txn as unknown as Db;
    const [job] = await tx
      .select()
      .from(jobs)
      .where(and(eq(jobs.tenantId, input.tenantId), eq(jobs.id, jobId)))
      .for('update');
    if (!job) throw jobNotFound(jobId);
    if (job.status !== 'queued' && job.status !== 'processing') throw jobClosed(jobId, job.status);

    let target: { channel: Channel; conversationId: string };
    if (job.conversationId) {
      const [row] = await tx
        .select({ channel: channels, phoneHash: contacts.phoneHash })
        .from(conversations)
        .innerJoin(channels, eq(channels.id, conversations.channelId))
        .innerJoin(contacts, eq(contacts.id, conversations.contactId))
        .where(and(eq(conversations.tenantId, input.tenantId), eq(conversations.id, job.conversationId)));
      if (!row) throw notFound('CONVERSATION_NOT_FOUND', `job_id: the conversation of job "${jobId}" no longer exists`);
      // A job's answer goes to the customer who asked; anything else is a misrouted reply.
      if (row.phoneHash !== deps.keyring.blindIndex(input.to)) {
        throw badRequest('TO_MISMATCH', `to: is not the customer who sent job "${jobId}"`);
      }
      target = { channel: row.channel, conversationId: job.conversationId };
    } else {
      target = await ensureConversation(tx, deps.keyring, input.tenantId, input.to);
    }

    const sent = await deliver(tx, deps, {
      tenantId: input.tenantId,
      channel: target.channel,
      conversationId: target.conversationId,
      to: input.to,
      text: input.text,
      dedupeKey: job.replyKey ?? `job:${job.id}`,
      inReplyTo: job.messageIds ?? [],
    });
    await tx
      .update(jobs)
      .set({ status: 'completed', replyMessageId: sent.messageId, leaseExpiresAt: null, finishedAt: sql`now()`, updatedAt: sql`now()` })
      .where(eq(jobs.id, job.id));
    return { ...sent, workflowId: job.workflowId };
  });
}

/** A send that answers no job (the seed's plain `{ to, message, tenant_id }`). */
async function sendUnprompted(deps: SendDeps, input: LegacySend): Promise<LegacySent> {
  const target = await ensureConversation(deps.db, deps.keyring, input.tenantId, input.to);
  const sent = await deliver(deps.db, deps, {
    tenantId: input.tenantId,
    channel: target.channel,
    conversationId: target.conversationId,
    to: input.to,
    text: input.text,
    dedupeKey: `send:${randomUUID()}`,
    inReplyTo: [],
  });
  return { ...sent, workflowId: null };
}

/** The customer's conversation on the tenant's default channel, created if this is the first contact. */
async function ensureConversation(
  db: Db,
  keyring: Keyring,
  tenantId: string,
  phone: string,
): Promise<{ channel: Channel; conversationId: string }> {
  const [channel] = await db
    .select()
    .from(channels)
    .where(and(eq(channels.tenantId, tenantId), eq(channels.isDefault, true)));
  if (!channel) throw notFound('CHANNEL_NOT_FOUND', 'tenant_id: the tenant has no default channel to send from');
  const phoneHash = keyring.blindIndex(phone);
  await db
    .insert(contacts)
    .values({ tenantId, phoneHash, phoneEnc: keyring.encrypt(phone) })
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
    .select({ id: conversations.id })
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.channelId, channel.id), eq(conversations.contactId, contact.id)));
  return { channel, conversationId: conversation.id };
}

interface Delivery {
  tenantId: string;
  channel: Channel;
  conversationId: string;
  to: string;
  text: string;
  dedupeKey: string;
  inReplyTo: string[];
}

/** Records the outbound message (`sending`), sends it, then marks it `sent` and its inbound messages answered. */
async function deliver(db: Db, deps: SendDeps, d: Delivery): Promise<{ messageId: string; sentAt: string }> {
  await db
    .insert(messages)
    .values({
      tenantId: d.tenantId,
      conversationId: d.conversationId,
      direction: 'outbound',
      dedupeKey: d.dedupeKey,
      bodyEnc: deps.keyring.encrypt(d.text),
      status: 'sending',
      inReplyTo: d.inReplyTo,
      replySource: 'n8n',
    })
    .onConflictDoNothing({ target: [messages.tenantId, messages.dedupeKey] });
  const [outbound] = await db
    .select({ id: messages.id, status: messages.status, sentAt: messages.sentAt })
    .from(messages)
    .where(and(eq(messages.tenantId, d.tenantId), eq(messages.dedupeKey, d.dedupeKey)));
  if (outbound.status === 'sent') return { messageId: outbound.id, sentAt: (outbound.sentAt ?? new Date()).toISOString() };

  let providerMessageId: string;
  try {
    ({ providerMessageId } = await deps.providers.forChannel(d.channel).sendText({
      tenantId: d.tenantId,
      channel: d.channel,
      to: d.to,
      text: d.text,
      idempotencyKey: `${d.tenantId}:${d.dedupeKey}`,
      inReplyTo: d.inReplyTo,
    }));
  } catch (err) {
    await db.update(messages).set({ status: 'failed' }).where(eq(messages.id, outbound.id));
    throw new AppError(
      502,
      'PROVIDER_FAILED',
      `the ${d.channel.provider} provider did not accept the message (${(err as Error).name}); retry the send`,
    );
  }
  const [updated] = await db
    .update(messages)
    .set({ status: 'sent', providerMessageId, sentAt: sql`now()` })
    .where(eq(messages.id, outbound.id))
    .returning({ sentAt: messages.sentAt });
  if (d.inReplyTo.length > 0) {
    await db
      .update(messages)
      .set({ status: 'answered' })
      .where(and(eq(messages.tenantId, d.tenantId), inArray(messages.id, d.inReplyTo)));
  }
  return { messageId: outbound.id, sentAt: updated.sentAt!.toISOString() };
}
