import { ActivityFailure, ApplicationFailure, proxyActivities, proxyLocalActivities, TimeoutFailure, uuid4 } from '@temporalio/workflow';
import type { createActivities } from '../activities/index.js';
import { renderTemplate } from '../core/data-engine/template.js';
import { DATA_WORKER_ACTIVITY_PREFIX, type LookupOutcome, type LookupPlan, type LookupTurnPlan } from '../core/data-engine/types.js';

type Activities = ReturnType<typeof createActivities>;

/** Everything a lookup may take, retries included, so the fallback reply leaves within the seed's 10 seconds. */
export const LOOKUP_BUDGET_MS = 8000;

const { recordLookup } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' },
});

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure) {
    const cause = err.cause;
    if (cause instanceof TimeoutFailure) return `timed out (${cause.timeoutType}): the source did not answer in time`;
    if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
    return cause?.message ?? err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Marks an activity for the tenant's data worker: the codec seals its payloads with that tenant's key. */
const dataWorkerActivityId = (tenantId: string) => `${DATA_WORKER_ACTIVITY_PREFIX}${tenantId}/${uuid4()}`;

/**
 * Runs one lookup as a regular activity (on the tenant's data-worker queue when the source is
 * served there), retried with backoff inside the budget, and writes the audit row either way.
 */
export async function runLookup(plan: LookupPlan): Promise<LookupOutcome> {
  const { dataLookup } = proxyActivities<Activities>({
    ...(plan.taskQueue ? { taskQueue: plan.taskQueue, activityId: dataWorkerActivityId(plan.request.tenantId) } : {}),
    startToCloseTimeout: plan.attemptTimeoutMs + 500,
    scheduleToCloseTimeout: LOOKUP_BUDGET_MS,
    retry: {
      initialInterval: '200ms',
      backoffCoefficient: 2,
      maximumInterval: '2s',
      maximumAttempts: 5,
      nonRetryableErrorTypes: ['BadRequest', 'NotFound'],
    },
  });
  const started = Date.now();
  let outcome: LookupOutcome;
  let via = plan.taskQueue ? 'tenant_worker' : 'parley';
  try {
    const result = await dataLookup({ ...plan.request, attemptTimeoutMs: plan.attemptTimeoutMs });
    via = result.via;
    outcome = { ok: true, rows: result.rows, totalMs: Date.now() - started, sourceMs: result.sourceMs };
  } catch (err) {
    outcome = { ok: false, rows: [], error: failureMessage(err), totalMs: Date.now() - started };
  }
  await recordLookup({
    tenantId: plan.request.tenantId,
    dataSourceId: plan.request.dataSourceId,
    query: plan.request.query,
    customerHash: plan.customerHash,
    // The source's own time when it answered; the whole wait (retries included) when it did not.
    responseTimeMs: outcome.sourceMs ?? outcome.totalMs,
    outcome: !outcome.ok ? 'error' : outcome.rows.length === 0 ? 'not_found' : 'ok',
    error: outcome.error,
    via,
  });
  return outcome;
}

/** The reply text for a lookup: the template over the first row, or the not-found / fallback message. */
export function lookupReply(plan: Pick<LookupTurnPlan, 'replyTemplate' | 'fallbackText' | 'notFoundText' | 'lookup'>, outcome: LookupOutcome): string {
  if (!outcome.ok) return plan.fallbackText;
  if (outcome.rows.length === 0) return plan.notFoundText;
  return renderTemplate(plan.replyTemplate, plan.lookup.request.params, outcome.rows[0]);
}

export interface DataLookupWorkflowInput {
  plan: LookupPlan;
  replyTemplate?: string;
  fallbackText: string;
  notFoundText: string;
}

/** One lookup outside a conversation: `POST /routes/data/nl-query` and native `data_lookup` jobs. */
export async function dataLookupWorkflow(input: DataLookupWorkflowInput): Promise<{ outcome: LookupOutcome; reply: string | null }> {
  const outcome = await runLookup(input.plan);
  const reply = input.replyTemplate
    ? lookupReply({ replyTemplate: input.replyTemplate, fallbackText: input.fallbackText, notFoundText: input.notFoundText, lookup: input.plan }, outcome)
    : null;
  return { outcome, reply };
}

/** Connectivity check of a source, on the queue of the worker that serves it. */
export async function dataSourceTestWorkflow(input: {
  tenantId: string;
  dataSourceId: string;
  taskQueue: string;
  tenantWorker: boolean;
}): Promise<{ ok: boolean; latencyMs?: number; error?: string }> {
  const { testDataSource } = proxyActivities<Activities>({
    taskQueue: input.taskQueue,
    ...(input.tenantWorker ? { activityId: dataWorkerActivityId(input.tenantId) } : {}),
    startToCloseTimeout: '10s',
    scheduleToCloseTimeout: '10s',
    retry: { maximumAttempts: 1 },
  });
  try {
    const { latencyMs } = await testDataSource({ tenantId: input.tenantId, dataSourceId: input.dataSourceId });
    return { ok: true, latencyMs };
  } catch (err) {
    return { ok: false, error: failureMessage(err) };
  }
}
