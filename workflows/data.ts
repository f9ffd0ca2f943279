import {
  ActivityFailure,
  ApplicationFailure,
  patched,
  proxyActivities,
  proxyLocalActivities,
  TimeoutFailure,
  uuid4,
} from '@temporalio/workflow';
import type { Activities } from '../contracts/activities.js';
import {
  DATA_WORKER_ACTIVITY_PREFIX,
  type DataLookupWorkflow,
  type DataSourceTestWorkflow,
  type LookupOutcome,
  type LookupPlan,
  type LookupResult,
  type LookupTurnPlan,
} from '../contracts/data-lookup.js';
import { LOOKUP_AUDIT_RETRY, LOOKUP_RETRY, SINGLE_ATTEMPT } from '../contracts/retry-policies.js';
import { renderTemplate } from './template.js';

/** Everything a lookup may take, retries included, so the fallback reply leaves within the seed's 10 seconds. */
export const LOOKUP_BUDGET_MS = 8000;

const { recordLookup } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: LOOKUP_AUDIT_RETRY,
});

function failureMessage(err: unknown): string {
  // A regular activity's failure arrives wrapped in an ActivityFailure; a local activity's may not.
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof TimeoutFailure) return `timed out (${cause.timeoutType}): the source did not answer in time`;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return cause instanceof Error ? cause.message : String(cause ?? err);
}

/** Marks an activity for the tenant's data worker: the codec seals its payloads with that tenant's key. */
const dataWorkerActivityId = (tenantId: string) => `${DATA_WORKER_ACTIVITY_PREFIX}${tenantId}/${uuid4()}`;

/**
 * The lookup activity for a plan. A source Parley holds credentials for runs as a local
 * activity: no task dispatch through the server, which at 100 concurrent lookups is most of the
 * wait. A tenant-worker source is a regular activity on this workflow's queue: Parley's worker
 * hands it to the tenant's data worker and completes it asynchronously, which a local activity cannot.
 */
function lookupActivity(plan: LookupPlan) {
  const timeouts = { startToCloseTimeout: plan.attemptTimeoutMs + 500, scheduleToCloseTimeout: LOOKUP_BUDGET_MS, retry: LOOKUP_RETRY };
  if (plan.remote) return proxyActivities<Activities>(timeouts).dataLookup;
  // Conversations that looked up before lookups became local keep their history's activity events.
  if (!plan.taskQueue && patched('local-lookups')) return proxyLocalActivities<Activities>(timeouts).dataLookup;
  return proxyActivities<Activities>({
    ...(plan.taskQueue ? { taskQueue: plan.taskQueue, activityId: dataWorkerActivityId(plan.request.tenantId) } : {}),
    ...timeouts,
  }).dataLookup;
}

/** Runs one lookup, retried with backoff inside the budget, and writes the audit row either way. */
export async function runLookup(plan: LookupPlan): Promise<LookupOutcome> {
  const startedAt = Date.now();
  const local = !plan.taskQueue && !plan.remote;
  let result: LookupResult | undefined;
  let error: string | undefined;
  try {
    result = await lookupActivity(plan)({
      ...plan.request,
      attemptTimeoutMs: plan.attemptTimeoutMs,
      ...(local ? { audit: { customerHash: plan.customerHash } } : {}),
    });
  } catch (err) {
    error = failureMessage(err);
  }
  if (result?.audited) return { ok: true, rows: result.rows, totalMs: result.totalMs, sourceMs: result.sourceMs };
  const rows = result?.rows ?? [];
  // The workflow's clock stands still within a task, so the audit activity measures a failure's wait.
  const waitedMs = await recordLookup({
    tenantId: plan.request.tenantId,
    dataSourceId: plan.request.dataSourceId,
    query: plan.request.query,
    customerHash: plan.customerHash,
    startedAt,
    sourceMs: result?.sourceMs,
    outcome: !result ? 'error' : rows.length === 0 ? 'not_found' : 'ok',
    error,
    via: result?.via ?? (local ? 'parley' : 'tenant_worker'),
  });
  return result ? { ok: true, rows, totalMs: result.totalMs, sourceMs: result.sourceMs } : { ok: false, rows, totalMs: waitedMs, error };
}

/** The reply text for a lookup: the template over the first row, or the not-found / fallback message. */
export function lookupReply(
  plan: Pick<LookupTurnPlan, 'replyTemplate' | 'fallbackText' | 'notFoundText' | 'lookup'>,
  outcome: LookupOutcome,
): string {
  if (!outcome.ok) return plan.fallbackText;
  if (outcome.rows.length === 0) return plan.notFoundText;
  return renderTemplate(plan.replyTemplate, plan.lookup.request.params, outcome.rows[0]);
}

/** One lookup outside a conversation: `POST /routes/data/nl-query` and native `data_lookup` jobs. */
export const dataLookupWorkflow: DataLookupWorkflow = async (input) => {
  const outcome = await runLookup(input.plan);
  const reply = input.replyTemplate
    ? lookupReply(
        { replyTemplate: input.replyTemplate, fallbackText: input.fallbackText, notFoundText: input.notFoundText, lookup: input.plan },
        outcome,
      )
    : null;
  return { outcome, reply };
};

/** Connectivity check of a source, on the queue of the worker that serves it. */
export const dataSourceTestWorkflow: DataSourceTestWorkflow = async (input) => {
  const { testDataSource } = proxyActivities<Activities>({
    taskQueue: input.taskQueue,
    ...(input.tenantWorker ? { activityId: dataWorkerActivityId(input.tenantId) } : {}),
    startToCloseTimeout: '10s',
    scheduleToCloseTimeout: '10s',
    retry: SINGLE_ATTEMPT,
  });
  try {
    const { latencyMs } = await testDataSource({ tenantId: input.tenantId, dataSourceId: input.dataSourceId });
    return { ok: true, latencyMs };
  } catch (err) {
    return { ok: false, error: failureMessage(err) };
  }
};
