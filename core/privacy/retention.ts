import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { eq, isNotNull, sql } from 'drizzle-orm';
import type { PurgeCounts, RetentionPurgeWorkflow } from '../../contracts/retention.js';
import type { Db } from '../db/client.js';
import { tenants } from '../db/schema.js';

const BATCH = 1000;

/**
 * Outbound events are a delivery log, not the record: every tenant's are kept this long (or its
 * shorter retention period), which bounds how far back `POST …/webhook-endpoints/{id}/replay` reaches.
 */
export const EVENT_KEEP_DAYS = 30;

/** Deletes in batches so no purge holds long locks against live traffic. */
async function deleteInBatches(db: Db, statement: (limit: number) => ReturnType<typeof sql>): Promise<number> {
  let total = 0;
  for (;;) {
    const res = await db.execute(statement(BATCH));
    total += res.rowCount ?? 0;
    if ((res.rowCount ?? 0) < BATCH) return total;
  }
}

/**
 * Applies each tenant's retention: messages older than it, closed conversations idle for
 * longer (their messages and outbox rows by cascade), sandbox sends, and finished jobs.
 * Open conversations stay; only their old messages go. Outbound events go after the period or
 * EVENT_KEEP_DAYS, whichever is shorter, once none of their deliveries is pending. Temporal
 * removes closed workflow histories itself after the namespace's retention period.
 */
export async function purgeExpired(db: Db): Promise<PurgeCounts> {
  const due = await db.select({ id: tenants.id, days: tenants.retentionDays }).from(tenants).where(isNotNull(tenants.retentionDays));
  const counts: PurgeCounts = { tenants: due.length, messages: 0, conversations: 0, sandbox_messages: 0, jobs: 0, events: 0 };
  const settled = sql`NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = events.id AND d.status = 'pending')`;
  counts.events += await deleteInBatches(
    db,
    (n) => sql`DELETE FROM events WHERE id IN (SELECT id FROM events
                 WHERE created_at < now() - make_interval(days => ${EVENT_KEEP_DAYS}) AND ${settled} LIMIT ${n})`,
  );
  for (const t of due) {
    const cutoff = sql`now() - make_interval(days => ${t.days})`;
    counts.conversations += await deleteInBatches(
      db,
      (n) => sql`DELETE FROM conversations WHERE id IN (SELECT id FROM conversations
                   WHERE tenant_id = ${t.id} AND status = 'closed' AND updated_at < ${cutoff} LIMIT ${n})`,
    );
    counts.messages += await deleteInBatches(
      db,
      (n) => sql`DELETE FROM messages WHERE id IN (SELECT id FROM messages
                   WHERE tenant_id = ${t.id} AND created_at < ${cutoff} LIMIT ${n})`,
    );
    counts.sandbox_messages += await deleteInBatches(
      db,
      (n) => sql`DELETE FROM sandbox_messages WHERE id IN (SELECT id FROM sandbox_messages
                   WHERE tenant_id = ${t.id} AND sent_at < ${cutoff} LIMIT ${n})`,
    );
    // Jobs still waiting for or held by an n8n worker are live work, not history.
    counts.jobs += await deleteInBatches(
      db,
      (n) => sql`DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
                   WHERE tenant_id = ${t.id} AND status NOT IN ('queued', 'processing') AND updated_at < ${cutoff} LIMIT ${n})`,
    );
    counts.events += await deleteInBatches(
      db,
      (n) => sql`DELETE FROM events WHERE id IN (SELECT id FROM events
                   WHERE tenant_id = ${t.id} AND created_at < ${cutoff} AND ${settled} LIMIT ${n})`,
    );
  }
  return counts;
}

export async function setRetention(db: Db, tenantId: string, days: number | null): Promise<boolean> {
  const rows = await db
    .update(tenants)
    .set({ retentionDays: days, updatedAt: sql`now()` })
    .where(eq(tenants.id, tenantId))
    .returning({ id: tenants.id });
  return rows.length > 0;
}

export const retentionScheduleId = (taskQueue: string) => `parley-retention-purge/${taskQueue}`;

/**
 * One Schedule per deployment (per task queue) runs the purge workflow; every API replica
 * calls this at start-up and all but the first find it already there.
 */
export async function ensureRetentionSchedule(client: Client, opts: { taskQueue: string; every: string }): Promise<void> {
  try {
    await client.schedule.create<RetentionPurgeWorkflow>({
      scheduleId: retentionScheduleId(opts.taskQueue),
      spec: { intervals: [{ every: opts.every as `${number}${'s' | 'm' | 'h' | 'd'}` }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'retentionPurgeWorkflow',
        taskQueue: opts.taskQueue,
        workflowId: `retention-purge/${opts.taskQueue}`,
        args: [],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
}
