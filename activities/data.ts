import { ApplicationFailure, CompleteAsyncError, Context } from '@temporalio/activity';
import type { Keyring } from '../core/platform/crypto.js';
import type { Db } from '../core/db/client.js';
import { FailureType } from '../core/platform/errors.js';
import { MAX_LOOKUP_TIMEOUT_MS, scrub } from '../core/data-engine/config.js';
import { ConnectorPools, LookupError, probe, runQuery } from '../core/data-engine/connectors.js';
import { recordRemoteLookup, type RemoteRequest } from '../core/data-engine/remote.js';
import { loadDataSource, recordAccess, type StoredSource } from '../core/data-engine/store.js';
import type { DataLookupInput, DataSourceRef, LookupResult, RecordLookupInput } from '../contracts/data-lookup.js';

export type SourceResolver = (tenantId: string, dataSourceId: string) => Promise<StoredSource | undefined>;

/**
 * Failure messages travel in clear (Temporal history, worker logs, the audit row), and a
 * database may echo a parameter back ("invalid input syntax: …"), so parameter values are cut out.
 */
function toFailure(err: unknown, params: Record<string, string> = {}): never {
  if (err instanceof LookupError) {
    throw ApplicationFailure.create({
      type: err.kind === 'bad_request' ? FailureType.BadRequest : FailureType.DataSourceUnavailable,
      message: scrub(
        err.message,
        Object.values(params).filter((v) => v.length >= 3),
      ),
      nonRetryable: err.kind === 'bad_request',
    });
  }
  throw err;
}

/** Parley's own lookups: against sources whose configuration and credentials are in its database. */
function connectorLookups(opts: { resolve: SourceResolver; pools: ConnectorPools }) {
  async function source(tenantId: string, dataSourceId: string): Promise<StoredSource> {
    const found = await opts.resolve(tenantId, dataSourceId);
    if (!found) {
      throw ApplicationFailure.create({
        type: FailureType.NotFound,
        message: `no data source "${dataSourceId}" for this tenant`,
        nonRetryable: true,
      });
    }
    return found;
  }
  const attemptTimeout = (ms: number) => Math.min(Math.max(ms, 100), MAX_LOOKUP_TIMEOUT_MS);

  return {
    source,
    attemptTimeout,

    async dataLookup(input: DataLookupInput, config: StoredSource['source']): Promise<LookupResult> {
      const started = performance.now();
      try {
        const rows = await runQuery(opts.pools, input.tenantId, config, input.query, input.params, input.order, {
          timeoutMs: attemptTimeout(input.attemptTimeoutMs),
          signal: Context.current().cancellationSignal,
        });
        // Since first scheduled (by the server, or by the worker for a local activity): retries included.
        const totalMs = Math.max(0, Date.now() - Context.current().info.scheduledTimestampMs);
        return { rows, sourceMs: Math.round(performance.now() - started), totalMs, via: 'parley' };
      } catch (err) {
        return toFailure(err, input.params);
      }
    },

    async testDataSource(tenantId: string, config: StoredSource['source']): Promise<{ latencyMs: number }> {
      const started = performance.now();
      try {
        await probe(opts.pools, tenantId, config, {
          timeoutMs: config.connection.timeout_ms ?? 5000,
          signal: Context.current().cancellationSignal,
        });
      } catch (err) {
        return toFailure(err);
      }
      return { latencyMs: Math.round(performance.now() - started) };
    },
  };
}

/**
 * A source the tenant's own data worker serves: the attempt is recorded for that worker to pull
 * over the API, and the activity completes asynchronously when it answers there (or times out
 * like any attempt: same start-to-close, retries and fallback). The tenant holds no Temporal access.
 */
async function dispatchRemote(db: Db, keyring: Keyring, req: RemoteRequest): Promise<never> {
  const info = Context.current().info;
  if (info.isLocal) {
    throw ApplicationFailure.create({
      type: FailureType.BadRequest,
      message: `data source "${req.dataSourceId}" is served by the tenant's data worker: it runs as a regular activity, not a local one`,
      nonRetryable: true,
    });
  }
  const budgetLeftMs = info.scheduleToCloseTimeoutMs ? info.scheduledTimestampMs + info.scheduleToCloseTimeoutMs - Date.now() : Infinity;
  await recordRemoteLookup(db, keyring, req, {
    taskToken: info.taskToken,
    activityId: info.activityId,
    workflowId: info.workflowExecution?.workflowId,
    scheduledAt: new Date(info.scheduledTimestampMs),
    remainingMs: Math.min(info.startToCloseTimeoutMs, budgetLeftMs),
  });
  throw new CompleteAsyncError();
}

export interface DataDeps {
  db: Db;
  keyring: Keyring;
  pools?: ConnectorPools;
}

/** How long a worker reuses a source's configuration: a PUT (credential rotation) takes effect within this. */
export const SOURCE_CACHE_MS = 1000;

/**
 * Reads each source at most once per SOURCE_CACHE_MS, and once for any number of concurrent
 * lookups: 100 simultaneous lookups would otherwise queue on the database pool for their config.
 */
function cachedResolver(load: SourceResolver): SourceResolver {
  const cache = new Map<string, { at: number; value: Promise<StoredSource | undefined> }>();
  return (tenantId, id) => {
    const key = JSON.stringify([tenantId, id]);
    const hit = cache.get(key);
    if (hit && performance.now() - hit.at < SOURCE_CACHE_MS) return hit.value;
    const value = load(tenantId, id);
    cache.set(key, { at: performance.now(), value });
    value.catch(() => cache.delete(key));
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return value;
  };
}

/** Lookups against sources in Parley's database or through the tenant's data worker, and the audit log. */
export function createDataActivities({ db, keyring, pools = new ConnectorPools() }: DataDeps) {
  const lookups = connectorLookups({
    resolve: cachedResolver((tenantId, id) => loadDataSource(db, keyring, tenantId, id)),
    pools,
  });
  return {
    /**
     * A source Parley serves: the lookup writes its own audit row when it answers, saving the workflow a step.
     * A source the tenant's data worker serves: handed to that worker; the workflow writes the audit row.
     */
    async dataLookup(input: DataLookupInput): Promise<LookupResult> {
      const { source, servedBy } = await lookups.source(input.tenantId, input.dataSourceId);
      if (servedBy === 'tenant_worker') {
        return dispatchRemote(db, keyring, {
          kind: 'lookup',
          tenantId: input.tenantId,
          dataSourceId: input.dataSourceId,
          query: input.query,
          params: input.params,
          order: input.order,
          timeoutMs: lookups.attemptTimeout(input.attemptTimeoutMs),
        });
      }
      const result = await lookups.dataLookup(input, source);
      if (!input.audit) return result;
      await recordAccess(db, {
        tenantId: input.tenantId,
        dataSourceId: input.dataSourceId,
        query: input.query,
        customerHash: input.audit.customerHash,
        responseTimeMs: result.sourceMs,
        outcome: result.rows.length === 0 ? 'not_found' : 'ok',
        via: result.via,
        workflowId: Context.current().info.workflowExecution?.workflowId,
      });
      return { ...result, audited: true };
    },

    async testDataSource(input: DataSourceRef): Promise<{ latencyMs: number }> {
      const { source, servedBy } = await lookups.source(input.tenantId, input.dataSourceId);
      if (servedBy !== 'tenant_worker') return lookups.testDataSource(input.tenantId, source);
      return dispatchRemote(db, keyring, {
        kind: 'test',
        tenantId: input.tenantId,
        dataSourceId: input.dataSourceId,
        query: null,
        params: {},
        order: [],
        timeoutMs: Context.current().info.startToCloseTimeoutMs,
      });
    },

    /** Writes the audit row of a lookup that failed or ran elsewhere; returns its wait since the workflow's `startedAt`. */
    async recordLookup({ startedAt, sourceMs, ...entry }: RecordLookupInput): Promise<number> {
      const totalMs = Math.max(0, Date.now() - startedAt);
      await recordAccess(db, {
        ...entry,
        responseTimeMs: sourceMs ?? totalMs,
        workflowId: Context.current().info.workflowExecution?.workflowId,
      });
      return totalMs;
    },
  };
}
