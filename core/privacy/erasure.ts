import type { Client } from '@temporalio/client';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Keyring } from '../crypto.js';
import type { Db } from '../db/client.js';
import { consentEvents, contacts, conversations, erasures, jobs, messages, sandboxMessages } from '../db/schema.js';
import { jobsMentioning } from './export.js';

export interface ErasureReceipt {
  erased: {
    contacts: number;
    conversations: number;
    messages: number;
    sandbox_messages: number;
    jobs: number;
    consent_events: number;
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
 * Erases a contact (right to erasure): first every Postgres row that holds their data, in one
 * transaction that locks the contact (conversations, messages and outbox rows go by cascade),
 * then their conversation workflows: terminated and their histories deleted, every run of the
 * continue-as-new chain. Postgres goes first so the relay has nothing left to restart a
 * workflow with. Returns undefined when the tenant has no such contact.
 */
export async function eraseContact(deps: ErasureDeps, tenantId: string, contactId: string): Promise<ErasureReceipt | undefined> {
  const { db, keyring } = deps;
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
      .where(and(eq(jobs.tenantId, tenantId), jobsMentioning([contactId, ...convIds, keyring.decrypt(contact.phoneEnc)])))
      .returning({ id: jobs.id });
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
      },
    };
  });
  if (!removed) return undefined;

  let workflows = 0;
  for (const workflowId of removed.workflowIds) workflows += await deleteWorkflowRuns(deps.temporal, workflowId);
  const erased = { ...removed.counts, workflows };
  const [row] = await db.insert(erasures).values({ tenantId, contactId, erased }).returning({ at: erasures.at });
  return { erased, at: row.at.toISOString() };
}

/**
 * Terminates a workflow and deletes the history of each of its runs (continue-as-new leaves
 * one closed run per step). Returns how many runs were deleted.
 */
export async function deleteWorkflowRuns(temporal: Client, workflowId: string): Promise<number> {
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
  let deleted = 0;
  for (const runId of runIds) {
    try {
      await temporal.workflowService.deleteWorkflowExecution({
        namespace: temporal.options.namespace,
        workflowExecution: { workflowId, runId },
      });
      deleted++;
    } catch (err) {
      // Already deleted (a retried erasure): nothing left to remove.
      if ((err as { code?: number }).code !== 5) throw err;
    }
  }
  return deleted;
}
