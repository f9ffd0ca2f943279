import type { LookupPlan, LookupTurnPlan } from '../../contracts/data-lookup.js';
import type { Db } from '../db/client.js';
import { contacts } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { listIntents, loadDataSource, matchIntent, type StoredSource } from './store.js';

/** Default for one attempt when the source sets no connection.timeout_ms. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 2500;

/** Lookup planning for a turn: the first intent whose pattern matches, with its parameters. */
export async function planDataLookup(
  db: Db,
  keyring: Keyring,
  input: { tenantId: string; phoneEnc: string | null; text: string },
  tenantFallback: string,
): Promise<LookupTurnPlan | undefined> {
  const intents = await listIntents(db, input.tenantId);
  if (intents.length === 0) return undefined;
  const phone = input.phoneEnc ? keyring.decrypt(input.phoneEnc, { tenantId: input.tenantId, column: contacts.phoneEnc }) : undefined;
  const match = matchIntent(intents, input.text, phone);
  if (!match) return undefined;
  const stored = await loadDataSource(db, keyring, input.tenantId, match.intent.dataSourceId);
  if (!stored) return undefined;
  const fallbackText = match.intent.fallbackMessage ?? tenantFallback;
  return {
    kind: 'lookup',
    intentId: match.intent.id,
    lookup: lookupPlan(input.tenantId, stored, match.intent.query, match.params, match.intent.params, {
      customerHash: phone ? keyring.blindIndex(phone) : undefined,
    }),
    replyTemplate: match.intent.replyTemplate,
    fallbackText,
    notFoundText: match.intent.notFoundMessage ?? fallbackText,
  };
}

/**
 * What a lookup workflow needs to run one query: where (Parley's worker, or the tenant's data
 * worker over the API) and how long one attempt may take.
 */
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
