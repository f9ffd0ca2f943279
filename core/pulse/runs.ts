import { and, desc, eq, gte, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { PulseAudience, RunCounts } from '../../contracts/pulse.js';
import { campaignSends, contacts, pulseRuns } from '../db/schema.js';

/**
 * The audience: the tenant's opted-in contacts, carrying any of the tags when tags are given.
 * With `optedOutSince`, also those whose consent changed since then (a run counts them as skipped).
 */
export function audienceFilter(tenantId: string, audience: PulseAudience, optedOutSince?: Date): SQL {
  const tags = audience.tags ?? [];
  return and(
    eq(contacts.tenantId, tenantId),
    optedOutSince ? or(eq(contacts.optedIn, true), gte(contacts.consentAt, optedOutSince)) : eq(contacts.optedIn, true),
    tags.length > 0
      ? sql`${contacts.tags} && ${sql`ARRAY[${sql.join(
          tags.map((t) => sql`${t}`),
          sql`, `,
        )}]::text[]`}`
      : undefined,
  )!;
}

export interface RunView extends RunCounts {
  run_id: string;
  status: string;
  started_at: string;
  finished_at: string | null;
}

const counts = {
  sent: sql<number>`count(*) FILTER (WHERE ${campaignSends.status} = 'sent')::int`,
  failed: sql<number>`count(*) FILTER (WHERE ${campaignSends.status} = 'failed')::int`,
  skipped_opted_out: sql<number>`count(*) FILTER (WHERE ${campaignSends.status} = 'skipped_opted_out')::int`,
  skipped_window: sql<number>`count(*) FILTER (WHERE ${campaignSends.status} = 'skipped_window')::int`,
};

export async function runCounts(db: Db, runId: string): Promise<RunCounts | null> {
  const [run] = await db.select({ targeted: pulseRuns.targeted }).from(pulseRuns).where(eq(pulseRuns.id, runId));
  if (!run) return null;
  const [c] = await db.select(counts).from(campaignSends).where(eq(campaignSends.runId, runId));
  return { targeted: run.targeted, ...c };
}

/** A campaign's runs, newest first, each with its per-status counts. */
export async function listRuns(db: Db, tenantId: string, campaignId: string, limit: number): Promise<RunView[]> {
  const runs = await db
    .select()
    .from(pulseRuns)
    .where(and(eq(pulseRuns.tenantId, tenantId), eq(pulseRuns.campaignId, campaignId)))
    .orderBy(desc(pulseRuns.startedAt))
    .limit(limit);
  if (runs.length === 0) return [];
  const rows = await db
    .select({ runId: campaignSends.runId, ...counts })
    .from(campaignSends)
    .where(
      sql`${campaignSends.runId} IN (${sql.join(
        runs.map((r) => sql`${r.id}`),
        sql`, `,
      )})`,
    )
    .groupBy(campaignSends.runId);
  const byRun = new Map(rows.map((r) => [r.runId, r]));
  return runs.map((r) => {
    const c = byRun.get(r.id);
    return {
      run_id: r.id,
      status: r.status,
      targeted: r.targeted,
      sent: c?.sent ?? 0,
      failed: c?.failed ?? 0,
      skipped_opted_out: c?.skipped_opted_out ?? 0,
      skipped_window: c?.skipped_window ?? 0,
      started_at: r.startedAt.toISOString(),
      finished_at: r.finishedAt?.toISOString() ?? null,
    };
  });
}
