import { sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db/client.js';
import { contacts, messages } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { egressFetch, findEgressRefusal } from '../platform/egress.js';
import { MESSAGE_EVENT_TYPES, type EventType } from './emit.js';
import { signingSecrets } from './endpoints.js';
import type { DeliverEventInput, EventAttemptOutcome } from '../../contracts/events.js';

/** A receiver has this long to answer 2xx. */
export const ATTEMPT_TIMEOUT_MS = 10_000;
/** Retries start within 5 s and double (with jitter) up to an hour, for 72 hours. */
export const RETRY_BASE_MS = 5_000;
export const RETRY_MAX_MS = 3600_000;
export const RETRY_WINDOW_MS = 72 * 3600_000;
/** An endpoint whose every attempt failed for this long is disabled. */
export const DISABLE_AFTER_FAILING_MS = 24 * 3600_000;

type DeliveryRow = {
  status: string;
  generation: number;
  endpoint_id: string;
  url: string;
  enabled: boolean;
  include_message_text: boolean;
  include_phone: boolean;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
  event_id: string;
  type: EventType;
  tenant_id: string;
  created_at: Date;
  conversation_id: string | null;
  message_id: string | null;
  contact_id: string | null;
  data: Record<string, unknown>;
  body_enc: string | null;
  phone_enc: string | null;
};

/**
 * The body of an event for one endpoint. Deterministic for a given event and endpoint options, so
 * every attempt and redelivery of an id sends the same bytes. Text and phone numbers are decrypted
 * only for endpoints that asked for them.
 */
export function renderEvent(keyring: Keyring, r: DeliveryRow): string {
  const data: Record<string, unknown> = {};
  if (r.conversation_id) data.conversation_id = r.conversation_id;
  if (r.message_id) data.message_id = r.message_id;
  if (r.contact_id) data.contact_id = r.contact_id;
  Object.assign(data, r.data);
  if (MESSAGE_EVENT_TYPES.includes(r.type)) {
    // An erased message has no text left to send.
    if (r.include_message_text && r.body_enc) data.text = keyring.decrypt(r.body_enc, { tenantId: r.tenant_id, column: messages.bodyEnc });
    else data.text_redacted = true;
  }
  if (r.include_phone && r.phone_enc) data.phone = keyring.decrypt(r.phone_enc, { tenantId: r.tenant_id, column: contacts.phoneEnc });
  return JSON.stringify({ id: r.event_id, type: r.type, created_at: r.created_at.toISOString(), tenant_id: r.tenant_id, data });
}

/** Standard Webhooks headers; during a rotation the signature header carries one signature per secret. */
export function signEvent(secrets: string[], id: string, at: Date, body: string): Record<string, string> {
  const signatures = secrets.map((s) => new Webhook(s).sign(id, at, body));
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}

async function loadDelivery(db: Db, deliveryId: string): Promise<DeliveryRow | undefined> {
  const { rows } = await db.execute<DeliveryRow>(sql`
    SELECT d.status, d.generation, d.endpoint_id, w.url, w.enabled, w.include_message_text, w.include_phone,
           w.secret_enc, w.previous_secret_enc, w.previous_secret_expires_at,
           e.id AS event_id, e.type, e.tenant_id, e.created_at, e.conversation_id, e.message_id, e.contact_id, e.data,
           m.body_enc, c.phone_enc
      FROM event_deliveries d
      JOIN webhook_endpoints w ON w.id = d.endpoint_id
      JOIN events e ON e.id = d.event_id
      LEFT JOIN messages m ON m.id = e.message_id AND m.tenant_id = e.tenant_id
      LEFT JOIN contacts c ON c.id = e.contact_id AND c.tenant_id = e.tenant_id
     WHERE d.id = ${deliveryId}`);
  const row = rows[0];
  if (!row) return undefined;
  return {
    ...row,
    created_at: new Date(row.created_at),
    previous_secret_expires_at: row.previous_secret_expires_at ? new Date(row.previous_secret_expires_at) : null,
  };
}

/** The delay before retry `attempt` (1-based): half to all of 5 s × 2^(attempt-1), at most an hour; Retry-After wins when longer. */
export function retryDelayMs(attempt: number, retryAfterMs?: number, random = Math.random): number {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 20));
  const jittered = Math.round(ceiling * (0.5 + random() / 2));
  return Math.min(RETRY_MAX_MS, Math.max(jittered, retryAfterMs ?? 0));
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** `notSent`: nothing went out (the endpoint was already disabled), so no attempt is counted. */
type Attempt = { statusCode: number | null; latencyMs: number; error?: string; retryAfterMs?: number; notSent?: boolean };

async function post(url: string, headers: Record<string, string>, body: string): Promise<Attempt> {
  const started = Date.now();
  try {
    const res = await egressFetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'Parley-Webhooks/1' },
      body,
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
    });
    // The receiver's answer is not read: only its status matters.
    await res.body?.cancel().catch(() => undefined);
    return { statusCode: res.status, latencyMs: Date.now() - started, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) };
  } catch (err) {
    const refusal = findEgressRefusal(err);
    if (refusal) return { statusCode: null, latencyMs: Date.now() - started, error: 'EGRESS_REFUSED' };
    const timedOut = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError';
    return { statusCode: null, latencyMs: Date.now() - started, error: timedOut ? 'TIMEOUT' : 'CONNECTION_FAILED' };
  }
}

const isRetryable = (a: Attempt) =>
  a.error === 'TIMEOUT' || a.error === 'CONNECTION_FAILED' || a.statusCode === 408 || a.statusCode === 429 || (a.statusCode ?? 0) >= 500;

/**
 * One HTTP attempt of a delivery, recorded on its row (and the endpoint's failure clock). Says
 * whether the delivery workflow should retry, and after how long. A delivery that is no longer
 * pending at this generation (delivered, redelivered meanwhile) is skipped.
 */
export async function attemptDelivery(db: Db, keyring: Keyring, input: DeliverEventInput): Promise<EventAttemptOutcome> {
  const row = await loadDelivery(db, input.id);
  if (!row || row.status !== 'pending' || row.generation !== input.generation) return { kind: 'skipped' };
  if (!row.enabled) return finish(db, input, 'failed', { statusCode: null, latencyMs: 0, error: 'ENDPOINT_DISABLED', notSent: true });

  const body = renderEvent(keyring, row);
  const attempt = await post(
    row.url,
    signEvent(
      signingSecrets(keyring, {
        tenantId: row.tenant_id,
        secretEnc: row.secret_enc,
        previousSecretEnc: row.previous_secret_enc,
        previousSecretExpiresAt: row.previous_secret_expires_at,
      }),
      row.event_id,
      new Date(),
      body,
    ),
    body,
  );
  if (attempt.statusCode !== null && attempt.statusCode >= 200 && attempt.statusCode < 300) {
    await db.execute(sql`UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ${row.endpoint_id} AND failing_since IS NOT NULL`);
    return finish(db, input, 'delivered', attempt);
  }
  if (attempt.statusCode === 410) {
    await disableEndpoint(db, row.endpoint_id, 'gone');
    return finish(db, input, 'failed', attempt);
  }
  const disabled = await markFailing(db, row.endpoint_id);
  if (disabled) return finish(db, input, 'failed', { ...attempt, error: 'ENDPOINT_DISABLED' });
  if (!isRetryable(attempt)) return finish(db, input, 'failed', attempt);
  const delayMs = retryDelayMs(input.attempt, attempt.retryAfterMs);
  if (Date.now() + delayMs > Date.parse(input.firstAttemptAt) + RETRY_WINDOW_MS) return finish(db, input, 'failed', attempt);
  await record(db, input, 'pending', attempt, new Date(Date.now() + delayMs));
  return { kind: 'retry', delayMs };
}

async function finish(db: Db, input: DeliverEventInput, status: 'delivered' | 'failed', a: Attempt): Promise<EventAttemptOutcome> {
  await record(db, input, status, a, null);
  return { kind: status };
}

async function record(db: Db, input: DeliverEventInput, status: string, a: Attempt, nextRetryAt: Date | null): Promise<void> {
  const counted = a.notSent ? 0 : 1;
  await db.execute(sql`
    UPDATE event_deliveries
       SET status = ${status}, attempts = attempts + ${counted}, last_status_code = coalesce(${a.statusCode}::int, last_status_code),
           last_latency_ms = ${counted ? a.latencyMs : null}::int, last_error = ${a.error ?? null},
           next_retry_at = ${nextRetryAt?.toISOString() ?? null}::timestamptz, updated_at = now(),
           delivered_at = CASE WHEN ${status} = 'delivered' THEN now() ELSE delivered_at END
     WHERE id = ${input.id} AND generation = ${input.generation}`);
}

async function disableEndpoint(db: Db, endpointId: string, reason: string): Promise<void> {
  await db.execute(sql`UPDATE webhook_endpoints SET enabled = false, disabled_reason = ${reason}, updated_at = now()
                        WHERE id = ${endpointId} AND enabled`);
}

/** Starts (or continues) the endpoint's failure clock; true when it has run 24 hours and the endpoint is now disabled. */
async function markFailing(db: Db, endpointId: string): Promise<boolean> {
  const { rows } = await db.execute<{ disabled: boolean }>(sql`
    UPDATE webhook_endpoints
       SET failing_since = coalesce(failing_since, now()),
           enabled = CASE WHEN failing_since < now() - ${`${DISABLE_AFTER_FAILING_MS} milliseconds`}::interval THEN false ELSE enabled END,
           disabled_reason = CASE WHEN failing_since < now() - ${`${DISABLE_AFTER_FAILING_MS} milliseconds`}::interval THEN 'failing_24h'
                                  ELSE disabled_reason END
     WHERE id = ${endpointId}
    RETURNING NOT enabled AS disabled`);
  return rows[0]?.disabled ?? false;
}
