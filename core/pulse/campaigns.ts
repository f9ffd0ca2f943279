import { setTimeout as delay } from 'node:timers/promises';
import {
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleHandle,
  type ScheduleOverlapPolicy,
} from '@temporalio/client';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { pulseCampaigns, type PulseCampaign } from '../db/schema.js';
import { AppError, badRequest, conflict, notFound } from '../platform/errors.js';
import { pausedSignal, type PulseAudience, type PulseCampaignWorkflow, type PulseMessage } from '../../contracts/pulse.js';

export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

export interface CampaignInput {
  name: string;
  cron: string;
  timezone: string;
  audience: PulseAudience;
  message: PulseMessage;
  rate_per_second: number;
  overlap: OverlapPolicy;
}

/** Schedule ids, like workflow ids, are built from internal ids only (they show in the Temporal UI). */
export const scheduleIdFor = (tenantId: string, campaignId: string) => `pulse/${tenantId}/${campaignId}`;

const temporalOverlap = (o: OverlapPolicy) => o.toUpperCase() as Exclude<ScheduleOverlapPolicy, undefined>;
const campaignNotFound = (id: string) => notFound('CAMPAIGN_NOT_FOUND', `id: no campaign "${id}"`);

export interface PulseScheduler {
  temporal: Client;
  db: Db;
  taskQueue: string;
}

function scheduleSpec(c: Pick<CampaignInput, 'cron' | 'timezone'>) {
  return { cronExpressions: [c.cron], timezone: c.timezone };
}

/** Temporal rejects what our checks missed (an exotic cron): still a 400 naming the field. */
function invalidSchedule(err: unknown): never {
  const message = (err as { details?: string; message?: string }).details ?? (err as Error).message;
  if (/INVALID_ARGUMENT|invalid/i.test(String((err as { code?: unknown }).code ?? '') + message)) {
    throw badRequest('VALIDATION_FAILED', `body.cron: Temporal rejected the schedule: ${message}`);
  }
  throw err;
}

export async function findCampaign(db: Db, tenantId: string, id: string): Promise<PulseCampaign> {
  const [row] = await db
    .select()
    .from(pulseCampaigns)
    .where(and(eq(pulseCampaigns.tenantId, tenantId), eq(pulseCampaigns.id, id)));
  if (!row) throw campaignNotFound(id);
  return row;
}

export async function listCampaigns(db: Db, tenantId: string): Promise<PulseCampaign[]> {
  return db.select().from(pulseCampaigns).where(eq(pulseCampaigns.tenantId, tenantId)).orderBy(asc(pulseCampaigns.createdAt));
}

/** The row first (it owns the id), then its Schedule; a Schedule that cannot be created takes the row back out. */
export async function createCampaign(s: PulseScheduler, tenantId: string, input: CampaignInput): Promise<PulseCampaign> {
  const id = crypto.randomUUID();
  const scheduleId = scheduleIdFor(tenantId, id);
  const [row] = await s.db
    .insert(pulseCampaigns)
    .values({
      id,
      tenantId,
      name: input.name,
      cron: input.cron,
      timezone: input.timezone,
      audience: input.audience,
      message: input.message,
      ratePerSecond: input.rate_per_second,
      overlap: input.overlap,
      scheduleId,
    })
    .returning();
  try {
    await s.temporal.schedule.create<PulseCampaignWorkflow>({
      scheduleId,
      spec: scheduleSpec(input),
      action: {
        type: 'startWorkflow',
        workflowType: 'pulseCampaignWorkflow',
        workflowId: scheduleId,
        taskQueue: s.taskQueue,
        args: [{ tenantId, campaignId: id }],
      },
      policies: { overlap: temporalOverlap(input.overlap), catchupWindow: '5 minutes' },
      state: { note: `Relational Pulse campaign "${input.name}"` },
    });
  } catch (err) {
    await s.db.delete(pulseCampaigns).where(eq(pulseCampaigns.id, id));
    invalidSchedule(err);
  }
  return row;
}

export async function updateCampaign(
  s: PulseScheduler,
  tenantId: string,
  id: string,
  patch: Partial<CampaignInput>,
): Promise<PulseCampaign> {
  const current = await findCampaign(s.db, tenantId, id);
  const next = {
    cron: patch.cron ?? current.cron,
    timezone: patch.timezone ?? current.timezone,
    overlap: (patch.overlap ?? current.overlap) as OverlapPolicy,
  };
  if (patch.cron !== undefined || patch.timezone !== undefined || patch.overlap !== undefined) {
    try {
      await s.temporal.schedule.getHandle(current.scheduleId).update((prev) => ({
        ...prev,
        spec: scheduleSpec(next),
        policies: { ...prev.policies, overlap: temporalOverlap(next.overlap) },
      }));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw campaignNotFound(id);
      invalidSchedule(err);
    }
  }
  const [row] = await s.db
    .update(pulseCampaigns)
    .set({
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.audience !== undefined ? { audience: patch.audience } : {}),
      ...(patch.message !== undefined ? { message: patch.message } : {}),
      ...(patch.rate_per_second !== undefined ? { ratePerSecond: patch.rate_per_second } : {}),
      cron: next.cron,
      timezone: next.timezone,
      overlap: next.overlap,
      updatedAt: sql`now()`,
    })
    .where(and(eq(pulseCampaigns.tenantId, tenantId), eq(pulseCampaigns.id, id)))
    .returning();
  if (!row) throw campaignNotFound(id);
  return row;
}

/** Deletes the Schedule, cancels a run in progress (it records itself as cancelled), then the row. */
export async function deleteCampaign(s: PulseScheduler, tenantId: string, id: string): Promise<void> {
  const campaign = await findCampaign(s.db, tenantId, id);
  const handle = s.temporal.schedule.getHandle(campaign.scheduleId);
  try {
    const description = await handle.describe();
    await handle.delete();
    for (const action of description.info.runningActions) {
      await s.temporal.workflow
        .getHandle(action.workflow.workflowId)
        .cancel()
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
    }
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  await s.db.delete(pulseCampaigns).where(eq(pulseCampaigns.id, campaign.id));
}

async function withSchedule<T>(s: PulseScheduler, campaign: PulseCampaign, fn: (h: ScheduleHandle) => Promise<T>): Promise<T> {
  try {
    return await fn(s.temporal.schedule.getHandle(campaign.scheduleId));
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) throw campaignNotFound(campaign.id);
    throw err;
  }
}

/**
 * Pauses or resumes the Schedule and any run in progress: the flag in the database stops a
 * page between two sends, the signal makes the run wait for (or go on after) the resume.
 */
export async function setPaused(s: PulseScheduler, tenantId: string, id: string, paused: boolean): Promise<void> {
  const campaign = await findCampaign(s.db, tenantId, id);
  await s.db
    .update(pulseCampaigns)
    .set({ paused, updatedAt: sql`now()` })
    .where(eq(pulseCampaigns.id, campaign.id));
  const description = await withSchedule(s, campaign, async (h) => {
    await (paused ? h.pause('paused through the Parley API') : h.unpause('resumed through the Parley API'));
    return h.describe();
  });
  for (const action of description.info.runningActions) {
    await s.temporal.workflow
      .getHandle(action.workflow.workflowId)
      .signal(pausedSignal, paused)
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      });
  }
}

export interface ScheduleState {
  paused: boolean;
  next_runs: string[];
  running: string[];
}

export async function scheduleState(s: PulseScheduler, campaign: PulseCampaign): Promise<ScheduleState> {
  const d = await withSchedule(s, campaign, (h) => h.describe());
  return {
    paused: d.state.paused,
    next_runs: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
  };
}

const TRIGGER_WAIT_MS = 15_000;

/**
 * Runs the campaign now through its Schedule (so the run shows there), under the campaign's
 * overlap policy: with "skip" a run in progress means nothing starts and the caller gets 409,
 * as does a paused campaign (it sends nothing until resumed).
 * The Schedule starts the workflow asynchronously; its id is the run id returned.
 */
export async function triggerCampaign(s: PulseScheduler, tenantId: string, id: string): Promise<string> {
  const campaign = await findCampaign(s.db, tenantId, id);
  if (campaign.paused) throw conflict('CAMPAIGN_PAUSED', `id: campaign "${id}" is paused; resume it before running it`);
  return withSchedule(s, campaign, async (h) => {
    const before = await h.describe();
    if (campaign.overlap === 'skip' && before.info.runningActions.length > 0) {
      throw conflict('RUN_IN_PROGRESS', `id: campaign "${id}" has a run in progress and its overlap policy is "skip"`);
    }
    const known = new Set([
      ...before.info.recentActions.map((a) => a.action.workflow.workflowId),
      ...before.info.runningActions.map((a) => a.workflow.workflowId),
    ]);
    await h.trigger(temporalOverlap(campaign.overlap as OverlapPolicy));
    const deadline = Date.now() + TRIGGER_WAIT_MS;
    while (Date.now() < deadline) {
      await delay(100);
      const d = await h.describe();
      const started = [
        ...d.info.runningActions.map((a) => a.workflow.workflowId),
        ...d.info.recentActions.map((a) => a.action.workflow.workflowId),
      ].find((w) => !known.has(w));
      if (started) return started;
    }
    throw new AppError(503, 'TRIGGER_PENDING', 'the Schedule accepted the trigger but has not started the run yet; see GET …/runs');
  });
}
