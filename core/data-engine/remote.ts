import { and, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { remoteLookups } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { conflict, FailureType, notFound } from '../platform/errors.js';
import { scrub } from './config.js';

/**
 * Lookups for sources a tenant's own data worker serves. The tenant never talks to Temporal:
 * Parley's activity records the lookup here and completes asynchronously; the data worker
 * pulls it over the API with a `data_worker` key of that one tenant, and its answer completes
 * the waiting activity by the task token this table keeps (encrypted, never shown).
 */

/** Postgres NOTIFY channel; the payload is the tenant id, so that tenant's waiting pollers wake up. */
export const REMOTE_LOOKUPS_CHANNEL = 'parley_remote_lookups';
/** Settled and expired rows are kept this long (a late second answer still gets its 409), then purged. */
const KEEP_SETTLED = sql`interval '10 minutes'`;
/** The most rows an answer may carry: what Parley's own connectors return at most. */
export const MAX_REMOTE_ROWS = 20;
const MAX_ERROR_CHARS = 500;

/** What `GET …/data-worker/next` hands the data worker (the API's response schema and the worker's parser). */
export const remoteOfferView = z.object({
  lookup_id: z.string(),
  kind: z.enum(['lookup', 'test']).describe('`test`: only check that the source answers (POST …/data-sources/{id}/test)'),
  data_source: z.string(),
  query: z.string().nullable().describe('The named query or endpoint of the source, from the data worker’s own configuration'),
  params: z.record(z.string(), z.string()),
  order: z.array(z.string()).describe("The parameters' order for SQL's $1…$n"),
  timeout_ms: z.number().describe('Time for one attempt at the source'),
  deadline: z.string().describe('After this, the answer is refused: the customer already got the fallback'),
  lease_expires_at: z.string().describe('Until then no other worker gets this lookup; extend it with POST …/lease while running'),
});

/** What the data worker answers with (`POST …/lookups/{id}/result`). */
export const remoteAnswerBody = z.discriminatedUnion('ok', [
  z
    .object({
      ok: z.literal(true),
      rows: z.array(z.record(z.string(), z.unknown())).max(MAX_REMOTE_ROWS, `must hold at most ${MAX_REMOTE_ROWS} rows`).default([]),
      source_ms: z.number().int().min(0).max(600_000),
    })
    .strict(),
  z
    .object({
      ok: z.literal(false),
      error: z
        .object({
          code: z
            .enum(['bad_request', 'unavailable', 'not_found'])
            .describe('`bad_request` and `not_found` are final; `unavailable` is retried within the lookup budget'),
          message: z.string().min(1).max(2000),
        })
        .strict(),
    })
    .strict(),
]);

export type RemoteKind = z.infer<typeof remoteOfferView>['kind'];

interface RemoteParams {
  query: string | null;
  params: Record<string, string>;
  order: string[];
}

export interface RemoteRequest extends RemoteParams {
  kind: RemoteKind;
  tenantId: string;
  dataSourceId: string;
  timeoutMs: number;
}

/** The waiting activity attempt, from its ActivityInfo. */
export interface WaitingActivity {
  taskToken: Uint8Array;
  activityId: string;
  workflowId?: string;
  scheduledAt: Date;
  /** Until the attempt's start-to-close (or the lookup's whole budget) runs out. */
  remainingMs: number;
}

/** Records one attempt's lookup for the tenant's data worker and wakes its pollers. */
export async function recordRemoteLookup(db: Db, keyring: Keyring, req: RemoteRequest, activity: WaitingActivity): Promise<string> {
  const params: RemoteParams = { query: req.query, params: req.params, order: req.order };
  const [row] = await db
    .insert(remoteLookups)
    .values({
      tenantId: req.tenantId,
      kind: req.kind,
      dataSourceId: req.dataSourceId,
      taskTokenEnc: keyring.encrypt(Buffer.from(activity.taskToken).toString('base64'), {
        tenantId: req.tenantId,
        column: remoteLookups.taskTokenEnc,
      }),
      paramsEnc: keyring.encrypt(JSON.stringify(params), { tenantId: req.tenantId, column: remoteLookups.paramsEnc }),
      activityId: activity.activityId,
      workflowId: activity.workflowId,
      timeoutMs: req.timeoutMs,
      scheduledAt: activity.scheduledAt,
      deadline: sql`now() + ${Math.max(0, Math.round(activity.remainingMs))}::int * interval '1 millisecond'`,
    })
    .returning({ id: remoteLookups.id });
  await db.execute(sql`SELECT pg_notify(${REMOTE_LOOKUPS_CHANNEL}, ${req.tenantId})`);
  // Answered or abandoned rows of this tenant: a few per lookup at most, so the table stays small.
  await db.execute(sql`DELETE FROM remote_lookups WHERE id IN (
    SELECT id FROM remote_lookups WHERE tenant_id = ${req.tenantId} AND deadline < now() - ${KEEP_SETTLED} LIMIT 100)`);
  return row.id;
}

export interface OfferedLookup extends RemoteParams {
  id: string;
  kind: RemoteKind;
  dataSourceId: string;
  timeoutMs: number;
  deadline: Date;
  leaseExpiresAt: Date;
}

/**
 * Leases the tenant's oldest open lookup: never answered, before its deadline, and not held
 * by another worker (or held by one whose lease ran out: it died or hung). SKIP LOCKED lets
 * concurrent pollers pass each other.
 */
export async function claimRemoteLookup(db: Db, keyring: Keyring, tenantId: string, leaseMs: number): Promise<OfferedLookup | undefined> {
  const { rows } = await db.execute<{
    id: string;
    kind: RemoteKind;
    data_source_id: string;
    params_enc: string;
    timeout_ms: number;
    deadline: Date;
    lease_expires_at: Date;
  }>(sql`
    WITH next AS (
      SELECT id FROM remote_lookups
       WHERE tenant_id = ${tenantId} AND status = 'pending' AND deadline > now()
         AND (lease_expires_at IS NULL OR lease_expires_at <= now())
       ORDER BY created_at, id
       LIMIT 1
       FOR UPDATE SKIP LOCKED
    )
    UPDATE remote_lookups r
       SET lease_expires_at = LEAST(r.deadline, now() + ${leaseMs}::int * interval '1 millisecond'), offers = r.offers + 1
      FROM next WHERE r.id = next.id
    RETURNING r.id, r.kind, r.data_source_id, r.params_enc, r.timeout_ms, r.deadline, r.lease_expires_at`);
  const row = rows[0];
  if (!row) return undefined;
  const params = JSON.parse(keyring.decrypt(row.params_enc, { tenantId, column: remoteLookups.paramsEnc })) as RemoteParams;
  return {
    id: row.id,
    kind: row.kind,
    dataSourceId: row.data_source_id,
    ...params,
    timeoutMs: row.timeout_ms,
    deadline: new Date(row.deadline),
    leaseExpiresAt: new Date(row.lease_expires_at),
  };
}

const lookupNotFound = (id: string) => notFound('LOOKUP_NOT_FOUND', `lookup_id: no lookup "${id}" for this tenant`);
const lookupSettled = (id: string, status: string) =>
  conflict('LOOKUP_ALREADY_ANSWERED', `lookup_id: lookup "${id}" is already ${status}; it takes no further answer`);
const lookupExpired = (id: string) =>
  conflict('LOOKUP_EXPIRED', `lookup_id: lookup "${id}" is past its deadline; Parley has already answered the customer without it`);

/** Extends a worker's lease on a lookup it is still running (up to the deadline). */
export async function extendRemoteLease(db: Db, tenantId: string, id: string, leaseMs: number): Promise<Date> {
  const [row] = await db
    .update(remoteLookups)
    .set({ leaseExpiresAt: sql`LEAST(${remoteLookups.deadline}, now() + ${leaseMs}::int * interval '1 millisecond')` })
    .where(and(eq(remoteLookups.id, id), eq(remoteLookups.tenantId, tenantId), eq(remoteLookups.status, 'pending')))
    .returning({ leaseExpiresAt: remoteLookups.leaseExpiresAt, expired: sql<boolean>`${remoteLookups.deadline} <= now()` });
  if (row && !row.expired) return row.leaseExpiresAt!;
  const [current] = await db
    .select({ status: remoteLookups.status })
    .from(remoteLookups)
    .where(and(eq(remoteLookups.id, id), eq(remoteLookups.tenantId, tenantId)));
  if (!current) throw lookupNotFound(id);
  throw current.status === 'pending' ? lookupExpired(id) : lookupSettled(id, current.status);
}

/** What the data worker reports: the rows (or, for a test, only its time), or an error. */
export type RemoteAnswer = z.output<typeof remoteAnswerBody>;

/** What completes the waiting activity: its result, or a failure its retry policy understands. */
export type RemoteSettlement =
  { ok: true; result: unknown } | { ok: false; failure: { type: FailureType; message: string; nonRetryable: boolean } };

/** Completes (or fails) the activity behind the token; false when the activity no longer waits. */
export type Deliver = (
  activity: { taskToken: Uint8Array; activityId: string; workflowId: string | null },
  s: RemoteSettlement,
) => Promise<boolean>;

const FAILURES = {
  bad_request: { type: FailureType.BadRequest, nonRetryable: true },
  not_found: { type: FailureType.NotFound, nonRetryable: true },
  unavailable: { type: FailureType.DataSourceUnavailable, nonRetryable: false },
} as const;

function settlement(kind: RemoteKind, answer: RemoteAnswer, params: RemoteParams, scheduledAt: Date): RemoteSettlement {
  if (!answer.ok) {
    // The worker is the tenant's code: its message is cut short and any parameter value scrubbed
    // before it reaches Temporal's history and the audit row.
    const message = scrub(
      answer.error.message.slice(0, MAX_ERROR_CHARS),
      Object.values(params.params).filter((v) => v.length >= 3),
    );
    return { ok: false, failure: { ...FAILURES[answer.error.code], message: `the tenant's data worker: ${message}` } };
  }
  if (kind === 'test') return { ok: true, result: { latencyMs: answer.source_ms } };
  const totalMs = Math.max(0, Date.now() - scheduledAt.getTime());
  return { ok: true, result: { rows: answer.rows, sourceMs: answer.source_ms, totalMs, via: 'tenant_worker' } };
}

/**
 * Settles a lookup with the data worker's answer, once: the row stays locked while the activity
 * is completed, so a second answer (another worker that held an expired lease, or a retried
 * POST) waits and then gets a 409. The task token and parameters are cleared afterwards.
 */
export async function answerRemoteLookup(
  db: Db,
  keyring: Keyring,
  opts: { tenantId: string; id: string; answer: RemoteAnswer; deliver: Deliver },
): Promise<'completed' | 'failed'> {
  const outcome = await db.transaction(async (tx) => {
    const [row] = await tx
      .select({
        status: remoteLookups.status,
        kind: remoteLookups.kind,
        taskTokenEnc: remoteLookups.taskTokenEnc,
        paramsEnc: remoteLookups.paramsEnc,
        activityId: remoteLookups.activityId,
        workflowId: remoteLookups.workflowId,
        scheduledAt: remoteLookups.scheduledAt,
        expired: sql<boolean>`${remoteLookups.deadline} <= now()`,
      })
      .from(remoteLookups)
      .where(and(eq(remoteLookups.id, opts.id), eq(remoteLookups.tenantId, opts.tenantId)))
      .for('update');
    if (!row) return { error: lookupNotFound(opts.id) };
    if (row.status !== 'pending' || !row.taskTokenEnc || !row.paramsEnc) return { error: lookupSettled(opts.id, row.status) };
    let status: 'completed' | 'failed' | 'expired' = 'expired';
    if (!row.expired) {
      const params = JSON.parse(
        keyring.decrypt(row.paramsEnc, { tenantId: opts.tenantId, column: remoteLookups.paramsEnc }),
      ) as RemoteParams;
      const taskToken = Buffer.from(
        keyring.decrypt(row.taskTokenEnc, { tenantId: opts.tenantId, column: remoteLookups.taskTokenEnc }),
        'base64',
      );
      const delivered = await opts.deliver(
        { taskToken, activityId: row.activityId, workflowId: row.workflowId },
        settlement(row.kind, opts.answer, params, row.scheduledAt),
      );
      if (delivered) status = opts.answer.ok ? 'completed' : 'failed';
    }
    await tx
      .update(remoteLookups)
      .set({ status, settledAt: sql`now()`, leaseExpiresAt: null, taskTokenEnc: null, paramsEnc: null })
      .where(eq(remoteLookups.id, opts.id));
    return status === 'expired' ? { error: lookupExpired(opts.id) } : { status };
  });
  if ('error' in outcome) throw outcome.error;
  return outcome.status;
}
