/** Live data lookups: what the workflows, Parley's worker and a tenant's data worker exchange. */

/** One lookup: a named query of one of the tenant's data sources, with its parameter values. */
export interface LookupRequest {
  tenantId: string;
  dataSourceId: string;
  /** The configured query or endpoint name; nothing else can run. */
  query: string;
  /** Values by name; `order` fills SQL's $1…$n. */
  params: Record<string, string>;
  order: string[];
}

export interface LookupResult {
  /** The SQL rows, or the REST/GraphQL JSON as one row per object (first 20 at most). */
  rows: Record<string, unknown>[];
  /** Time spent talking to the source, measured by the worker that ran it. */
  sourceMs: number;
  /** From the lookup's scheduling to this result, retries included. */
  totalMs: number;
  via: 'parley' | 'tenant_worker';
  /** The worker already wrote the audit row (Parley's own lookups). */
  audited?: boolean;
}

/** Where and how the workflow runs a lookup, decided from the tenant's configuration. */
export interface LookupPlan {
  request: LookupRequest;
  /**
   * Plans recorded before lookups went through the API: the tenant's old data-worker queue.
   * Kept so their histories replay; no plan sets it any more.
   */
  taskQueue?: string;
  /**
   * A `tenant_worker` source: a regular activity on the workflow's own queue, which Parley's
   * worker completes asynchronously when the tenant's data worker answers over the API.
   */
  remote?: boolean;
  /** One attempt's timeout (connection.timeout_ms), within the 10-second budget. */
  attemptTimeoutMs: number;
  /** Keyed hash of the customer's phone number, for the audit log. */
  customerHash?: string;
}

export interface LookupOutcome {
  ok: boolean;
  rows: Record<string, unknown>[];
  error?: string;
  /** From the workflow's request to the result or final failure. */
  totalMs: number;
  sourceMs?: number;
}

/** Activity id prefix of lookups for a tenant's data worker; the payload codec keys on it (core/temporal/codec.ts). */
export const DATA_WORKER_ACTIVITY_PREFIX = 'data-worker/';

/** The conversation's TurnPlan variant for a question an intent maps to a lookup. */
export interface LookupTurnPlan {
  kind: 'lookup';
  intentId: string;
  lookup: LookupPlan;
  replyTemplate: string;
  /** The intent's fallback_message, else the tenant's: sent when the source stays down. */
  fallbackText: string;
  /** Sent when the lookup succeeds with no rows; the fallback when the intent sets none. */
  notFoundText: string;
}

/** Input of the `dataLookup` activity. */
export interface DataLookupInput extends LookupRequest {
  attemptTimeoutMs: number;
  /** Set when Parley's worker runs the lookup: it writes the audit row itself on success. */
  audit?: { customerHash?: string };
}

/** One row of `data_access_logs`. */
export interface AccessLogEntry {
  tenantId: string;
  dataSourceId: string;
  query: string;
  customerHash?: string;
  /** The source's own time when it answered; the whole wait (retries included) when it did not. */
  responseTimeMs: number;
  outcome: 'ok' | 'not_found' | 'error';
  error?: string;
  via: string;
  /** The workflow the lookup ran in (set by the activity writing the row), so erasure finds it. */
  workflowId?: string;
}

/** Input of the `recordLookup` activity: the audit row, timed from the workflow's `startedAt`. */
export type RecordLookupInput = Omit<AccessLogEntry, 'responseTimeMs' | 'workflowId'> & { startedAt: number; sourceMs?: number };

export interface DataSourceRef {
  tenantId: string;
  dataSourceId: string;
}

export interface DataLookupWorkflowInput {
  plan: LookupPlan;
  replyTemplate?: string;
  fallbackText: string;
  notFoundText: string;
}

/** One lookup outside a conversation: `POST /routes/data/nl-query` and native `data_lookup` jobs. */
export type DataLookupWorkflow = (input: DataLookupWorkflowInput) => Promise<{ outcome: LookupOutcome; reply: string | null }>;

export interface DataSourceTestInput extends DataSourceRef {
  taskQueue: string;
  tenantWorker: boolean;
}

/** Connectivity check of a source, on the queue of the worker that serves it. */
export type DataSourceTestWorkflow = (input: DataSourceTestInput) => Promise<{ ok: boolean; latencyMs?: number; error?: string }>;
