import type { Client } from '@temporalio/client';
import { and, eq, inArray, isNotNull, or, sql } from 'drizzle-orm';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import {
  aiEvents,
  aiUsage,
  campaignSends,
  consentEvents,
  contacts,
  conversations,
  dataAccessLogs,
  deliveryEvents,
  erasures,
  events as outboundEvents,
  jobs,
  messageMedia,
  messages,
  remoteLookups,
  sandboxMessages,
} from '../db/schema.js';
import { providerIdForms } from '../messaging/provider-ids.js';
import { mediaWorkflowId } from '../platform/ids.js';
import { contactJobs } from './export.js';

/**
 * What an erasure removed (or anonymised, where a row must stay for the tenant's accounting),
 * by kind. Workflow counts are runs whose history was deleted.
 */
export interface ErasureReceipt {
  erased: {
    contacts: number;
    conversations: number;
    messages: number;
    message_media: number;
    sandbox_messages: number;
    jobs: number;
    consent_events: number;
    campaign_sends: number;
    delivery_events: number;
    remote_lookups: number;
    /** Anonymised: kept for the lookup metrics without customer, workflow or error. */
    data_access_logs: number;
    /** Anonymised: kept for the tenant's token budget without the conversation. */
    ai_usage: number;
    ai_events: number;
    /** Outbound events naming the contact or their conversations (their pending deliveries go with them). */
    webhook_events: number;
    conversation_workflows: number;
    lookup_workflows: number;
    media_workflows: number;
    /** All three kinds of workflow runs together. */
    workflows: number;
  };
  at: string;
}

export interface ErasureDeps {
  db: Db;
  keyring: Keyring;
  temporal: Client;
}

type WorkflowKind = 'conversation' | 'lookup' | 'media';

/** The Temporal workflows that name a contact, by kind. */
interface ContactWorkflows {
  conversation: string[];
  lookup: string[];
  media: string[];
}

/**
 * Every workflow that holds something of the contact: their conversations; the media downloads
 * of their messages; lookups run for them outside a conversation (nl-query, data_lookup), found
 * by their phone hash in data_access_logs. Campaign runs are not among them: a run covers many
 * contacts and its history holds only ids (the cursor is a contact id, meaningless once the
 * contact row is gone), never a phone, a name or a text.
 */
async function contactWorkflows(db: Db, tenantId: string, contactId: string, phoneHash: string): Promise<ContactWorkflows> {
  const convs = await db
    .select({ id: conversations.id, workflowId: conversations.workflowId })
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.contactId, contactId)));
  const convIds = convs.map((c) => c.id);
  const media = convIds.length
    ? await db
        .select({ id: messageMedia.id })
        .from(messageMedia)
        .innerJoin(messages, eq(messages.id, messageMedia.messageId))
        .where(and(eq(messageMedia.tenantId, tenantId), inArray(messages.conversationId, convIds)))
    : [];
  const conversation = convs.map((c) => c.workflowId);
  const lookups = await db
    .selectDistinct({ workflowId: dataAccessLogs.workflowId })
    .from(dataAccessLogs)
    .where(
      and(eq(dataAccessLogs.tenantId, tenantId), eq(dataAccessLogs.customerIdentifier, phoneHash), isNotNull(dataAccessLogs.workflowId)),
    );
  return {
    conversation,
    // A conversation's own lookups are in its history already.
    lookup: lookups.map((l) => l.workflowId!).filter((id) => !conversation.includes(id)),
    media: media.map((m) => mediaWorkflowId(tenantId, m.id)),
  };
}

/** Deletes the runs of each workflow, counting the runs per kind. */
async function deleteContactWorkflows(
  temporal: Client,
  workflows: ContactWorkflows,
  deleted: Record<WorkflowKind, Set<string>>,
): Promise<void> {
  for (const kind of ['conversation', 'lookup', 'media'] as const) {
    for (const workflowId of workflows[kind]) await deleteWorkflowRuns(temporal, workflowId, deleted[kind]);
  }
}

/**
 * The lookup audit rows of the contact stay for the tenant's metrics, without anything that
 * links them to the contact: their phone hash, the workflow, and the error (a source's error
 * may echo a parameter).
 */
function anonymiseLookupLogs(db: Db, tenantId: string, phoneHash: string, workflowIds: string[]) {
  return db
    .update(dataAccessLogs)
    .set({ customerIdentifier: null, workflowId: null, error: null })
    .where(
      and(
        eq(dataAccessLogs.tenantId, tenantId),
        or(
          eq(dataAccessLogs.customerIdentifier, phoneHash),
          workflowIds.length ? inArray(dataAccessLogs.workflowId, workflowIds) : undefined,
        ),
      ),
    )
    .returning({ id: dataAccessLogs.id });
}

/**
 * Erases a contact (right to erasure): every workflow that names them (terminated, the history
 * of every run deleted) and every Postgres row that holds their data, in one transaction that
 * locks the contact (conversations, messages, media and outbox rows go by cascade). Rows kept
 * for the tenant's accounting (lookup audit, AI token usage) are anonymised instead. Temporal
 * goes first so a Temporal outage fails the request before anything is gone and a retry can
 * finish the job; after the transaction the workflows are swept once more, because the relay
 * may have restarted a conversation with a message that was still in the outbox, and a lookup
 * in flight may have written its audit row since. Returns undefined when the tenant has no
 * such contact.
 */
export async function eraseContact(deps: ErasureDeps, tenantId: string, contactId: string): Promise<ErasureReceipt | undefined> {
  const { db, keyring } = deps;
  const [found] = await db
    .select({ phoneHash: contacts.phoneHash })
    .from(contacts)
    .where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)));
  if (!found) return undefined;
  const deleted: Record<WorkflowKind, Set<string>> = { conversation: new Set(), lookup: new Set(), media: new Set() };
  const before = await contactWorkflows(db, tenantId, contactId, found.phoneHash);
  await deleteContactWorkflows(deps.temporal, before, deleted);

  const removed = await db.transaction(async (txn) => {
    const tx = txn as unknown as Db;
    const [contact] = await tx
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)))
      .for('update');
    if (!contact) return undefined;
    // Read again under the lock: a message or media item may have arrived since.
    const workflows = await contactWorkflows(tx, tenantId, contactId, contact.phoneHash);
    const convIds = (
      await tx
        .select({ id: conversations.id })
        .from(conversations)
        .where(and(eq(conversations.tenantId, tenantId), eq(conversations.contactId, contactId)))
    ).map((c) => c.id);
    const ofConversations = and(eq(messages.tenantId, tenantId), inArray(messages.conversationId, convIds));
    const [{ n: messageCount }] = convIds.length
      ? await tx
          .select({ n: sql<number>`count(*)::int` })
          .from(messages)
          .where(ofConversations)
      : [{ n: 0 }];
    const mediaCount = workflows.media.length;

    // Status callbacks are kept by provider id: the ids of this contact's sends, in every stored form.
    const sentIds = [
      ...(convIds.length
        ? await tx
            .select({ id: messages.providerMessageId })
            .from(messages)
            .where(and(ofConversations, eq(messages.direction, 'outbound'), isNotNull(messages.providerMessageId)))
        : []),
      ...(await tx
        .select({ id: campaignSends.providerMessageId })
        .from(campaignSends)
        .where(
          and(eq(campaignSends.tenantId, tenantId), eq(campaignSends.contactId, contactId), isNotNull(campaignSends.providerMessageId)),
        )),
    ].flatMap((r) => providerIdForms(keyring, r.id!));
    const events = sentIds.length
      ? await tx
          .delete(deliveryEvents)
          .where(and(eq(deliveryEvents.tenantId, tenantId), inArray(deliveryEvents.providerMessageId, sentIds)))
          .returning({ status: deliveryEvents.status })
      : [];

    const allWorkflowIds = [...workflows.conversation, ...workflows.lookup, ...workflows.media];
    const remote = allWorkflowIds.length
      ? await tx
          .delete(remoteLookups)
          .where(and(eq(remoteLookups.tenantId, tenantId), inArray(remoteLookups.workflowId, allWorkflowIds)))
          .returning({ id: remoteLookups.id })
      : [];
    const logs = await anonymiseLookupLogs(tx, tenantId, contact.phoneHash, allWorkflowIds);
    const usage = convIds.length
      ? await tx
          .update(aiUsage)
          .set({ conversationId: null })
          .where(and(eq(aiUsage.tenantId, tenantId), inArray(aiUsage.conversationId, convIds)))
          .returning({ id: aiUsage.id })
      : [];
    // Event details can echo an LLM error or a handover reason: the events go.
    const aiEventRows = convIds.length
      ? await tx
          .delete(aiEvents)
          .where(and(eq(aiEvents.tenantId, tenantId), inArray(aiEvents.conversationId, convIds)))
          .returning({ id: aiEvents.id })
      : [];

    const webhookEvents = await tx
      .delete(outboundEvents)
      .where(
        and(
          eq(outboundEvents.tenantId, tenantId),
          convIds.length
            ? or(eq(outboundEvents.contactId, contactId), inArray(outboundEvents.conversationId, convIds))
            : eq(outboundEvents.contactId, contactId),
        ),
      )
      .returning({ id: outboundEvents.id });

    const sandbox = await tx
      .delete(sandboxMessages)
      .where(and(eq(sandboxMessages.tenantId, tenantId), eq(sandboxMessages.toHash, contact.phoneHash)))
      .returning({ id: sandboxMessages.id });
    const jobRows = await tx
      .delete(jobs)
      .where(
        and(
          eq(jobs.tenantId, tenantId),
          contactJobs(contactId, convIds, keyring.decrypt(contact.phoneEnc, { tenantId, column: contacts.phoneEnc })),
        ),
      )
      .returning({ id: jobs.id });
    const sends = await tx
      .delete(campaignSends)
      .where(and(eq(campaignSends.tenantId, tenantId), eq(campaignSends.contactId, contactId)))
      .returning({ runId: campaignSends.runId });
    const consent = await tx
      .delete(consentEvents)
      .where(and(eq(consentEvents.tenantId, tenantId), eq(consentEvents.contactId, contactId)))
      .returning({ id: consentEvents.id });
    // Conversations, messages, media and outbox rows follow by ON DELETE CASCADE.
    await tx.delete(contacts).where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)));
    return {
      workflows,
      phoneHash: contact.phoneHash,
      counts: {
        contacts: 1,
        conversations: convIds.length,
        messages: messageCount,
        message_media: mediaCount,
        sandbox_messages: sandbox.length,
        jobs: jobRows.length,
        consent_events: consent.length,
        campaign_sends: sends.length,
        delivery_events: events.length,
        remote_lookups: remote.length,
        data_access_logs: logs.length,
        ai_usage: usage.length,
        ai_events: aiEventRows.length,
        webhook_events: webhookEvents.length,
      },
    };
  });
  if (!removed) return undefined;

  // The sweep: workflows found under the lock, and lookups that finished since.
  const lateLookups = (
    await db
      .selectDistinct({ workflowId: dataAccessLogs.workflowId })
      .from(dataAccessLogs)
      .where(
        and(
          eq(dataAccessLogs.tenantId, tenantId),
          eq(dataAccessLogs.customerIdentifier, removed.phoneHash),
          isNotNull(dataAccessLogs.workflowId),
        ),
      )
  ).map((l) => l.workflowId!);
  const after = { ...removed.workflows, lookup: [...new Set([...removed.workflows.lookup, ...lateLookups])] };
  await deleteContactWorkflows(deps.temporal, after, deleted);
  const late = await anonymiseLookupLogs(db, tenantId, removed.phoneHash, lateLookups);

  const erased = {
    ...removed.counts,
    data_access_logs: removed.counts.data_access_logs + late.length,
    conversation_workflows: deleted.conversation.size,
    lookup_workflows: deleted.lookup.size,
    media_workflows: deleted.media.size,
    workflows: deleted.conversation.size + deleted.lookup.size + deleted.media.size,
  };
  const [row] = await db.insert(erasures).values({ tenantId, contactId, erased }).returning({ at: erasures.at });
  return { erased, at: row.at.toISOString() };
}

/**
 * Terminates a workflow and deletes the history of each of its runs (continue-as-new leaves
 * one closed run per step), adding their run ids to `deleted` (runs already there are skipped).
 */
export async function deleteWorkflowRuns(temporal: Client, workflowId: string, deleted = new Set<string>()): Promise<Set<string>> {
  const runIds = new Set<string>();
  try {
    const latest = await temporal.workflow.getHandle(workflowId).describe();
    runIds.add(latest.runId);
    if (latest.status.name === 'RUNNING') await temporal.workflow.getHandle(workflowId).terminate('contact erased');
  } catch (err) {
    if ((err as Error).name !== 'WorkflowNotFoundError') throw err;
  }
  // Visibility lists the older runs; it may lag a moment behind, which only matters for runs
  // that closed within that moment, and the namespace retention removes those too.
  const escaped = workflowId.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  for await (const execution of temporal.workflow.list({ query: `WorkflowId = '${escaped}'` })) runIds.add(execution.runId);
  for (const runId of runIds) {
    if (deleted.has(runId)) continue;
    try {
      await temporal.workflowService.deleteWorkflowExecution({
        namespace: temporal.options.namespace,
        workflowExecution: { workflowId, runId },
      });
      deleted.add(runId);
    } catch (err) {
      // Already deleted (a retried erasure): nothing left to remove.
      if ((err as { code?: number }).code !== 5) throw err;
    }
  }
  return deleted;
}
