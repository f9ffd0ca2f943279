import type { Client } from '@temporalio/client';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { campaignSends, consentEvents, contacts, conversations, erasures, jobs, messages, sandboxMessages } from '../db/schema.js';
import { contactJobs } from './export.js';

export interface ErasureReceipt {
  erased: {
    contacts: number;
    conversations: number;
    messages: number;
    sandbox_messages: number;
    jobs: number;
    consent_events: number;
    campaign_sends: number;
    workflows: number;
  };
  at: string;
}

export interface ErasureDeps {
  db: Db;
  keyring: Keyring;
  temporal: Client;
}

/**
 * Erases a contact (right to erasure): their conversation workflows (terminated, the history of
 * every run deleted) and every Postgres row that holds their data, in one transaction that locks
 * the contact (conversations, messages and outbox rows go by cascade). Temporal goes first so a
 * Temporal outage fails the request before anything is gone and a retry can finish the job;
 * after the transaction the workflows are swept once more, because the relay may have restarted
 * one with a message that was still in the outbox. Returns undefined when the tenant has no
 * such contact.
 */
export async function eraseContact(deps: ErasureDeps, tenantId: string, contactId: string): Promise<ErasureReceipt | undefined> {
  const { db, keyring } = deps;
  const workflowIds = (
    await db
      .select({ workflowId: conversations.workflowId })
      .from(conversations)
      .where(and(eq(conversations.tenantId, tenantId), eq(conversations.contactId, contactId)))
  ).map((c) => c.workflowId);
  const deletedRuns = new Set<string>();
  for (const workflowId of workflowIds) await deleteWorkflowRuns(deps.temporal, workflowId, deletedRuns);

  const removed = await db.transaction(async (tx) => {
    const [contact] = await tx
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)))
      .for('update');
    if (!contact) return undefined;
    const convs = await tx
      .select({ id: conversations.id, workflowId: conversations.workflowId })
      .from(conversations)
      .where(and(eq(conversations.tenantId, tenantId), eq(conversations.contactId, contactId)));
    const convIds = convs.map((c) => c.id);
    const [{ n: messageCount }] = convIds.length
      ? await tx
          .select({ n: sql<number>`count(*)::int` })
          .from(messages)
          .where(and(eq(messages.tenantId, tenantId), inArray(messages.conversationId, convIds)))
      : [{ n: 0 }];
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
    // Conversations, messages and outbox rows follow by ON DELETE CASCADE.
    await tx.delete(contacts).where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)));
    return {
      workflowIds: convs.map((c) => c.workflowId),
      counts: {
        contacts: 1,
        conversations: convs.length,
        messages: messageCount,
        sandbox_messages: sandbox.length,
        jobs: jobRows.length,
        consent_events: consent.length,
        campaign_sends: sends.length,
      },
    };
  });
  if (!removed) return undefined;

  for (const workflowId of removed.workflowIds) await deleteWorkflowRuns(deps.temporal, workflowId, deletedRuns);
  const erased = { ...removed.counts, workflows: deletedRuns.size };
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
