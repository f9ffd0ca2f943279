import type { StoredSource } from './store.js';
import type { LookupPlan } from '../../contracts/data-lookup.js';

/** Default for one attempt when the source sets no connection.timeout_ms. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 2500;

/** What a lookup workflow needs to run one query: where (Parley's worker, or the tenant's data worker over the API) and how long one attempt may take. */
export function lookupPlan(
  tenantId: string,
  stored: StoredSource,
  query: string,
  params: Record<string, string>,
  order: string[],
  extra: { customerHash?: string } = {},
): LookupPlan {
  return {
    request: { tenantId, dataSourceId: stored.source.id, query, params, order },
    ...(stored.servedBy === 'tenant_worker' ? { remote: true } : {}),
    attemptTimeoutMs: stored.source.connection.timeout_ms ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
    ...extra,
  };
}
