import { and, eq, inArray, sql } from 'drizzle-orm';
import type { JobOutcome } from '../../contracts/conversation.js';
import type { Db } from '../db/client.js';
import { jobs, messages } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { conflict, notFound } from '../platform/errors.js';

/**
 * The legacy n8n job queue (the seed's `jobs` table). A job is `queued` until a worker
 * claims it (`processing`, with a lease); it ends `completed` (answered), `failed` (the
 * worker said so), `timed_out` (the conversation stopped waiting and sent its fallback)
 * or `dead` (its lease expired `max_attempts` times).
 */
export const JOB_STATUSES = ['queued', 'processing', 'completed', 'failed', 'timed_out', 'dead'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
const OPEN_STATUSES: JobStatus[] = ['queued', 'processing'];

/** How long a legacy-mode conversation waits for n8n before its fallback, unless the tenant sets its own. */
export const DEFAULT_LEGACY_REPLY_TIMEOUT_S = 60;
/** Postgres NOTIFY channel; the payload is the tenant id, so waiting pollers of that tenant wake up. */
export const JOBS_CHANNEL = 'parley_jobs';

/** The seed's message job payload: what n8n workflows read today. */
export type MessageJobPayload = {
  from: string;
  message: string;
  tenant_id: string;
  timestamp: string;
};

/**
 * The seed's data_lookup job for a legacy-mode turn one of the tenant's intents recognised:
 * n8n runs the lookup itself; the message fields let it answer like a message job.
 */
export type DataLookupJobPayload = MessageJobPayload & {
  job_type: 'data_lookup';
  query: string;
  parameters: Record<string, string>;
  data_source: string;
};

export type JobPayload = { tenant_id: string } & Record<string, unknown>;

export interface NewJob {
  jobType: string;
  payload: JobPayload;
  maxAttempts?: number;
}

/**
 * `payload` (jsonb) keeps only fields without personal data, for operators and metrics;
 * the payload n8n receives is sealed in `payload_enc`.
 */
function sealPayload(keyring: Keyring, tenantId: string, jobType: string, payload: JobPayload) {
  const visible: Record<string, unknown> = { job_type: jobType, tenant_id: payload.tenant_id };
  if (typeof payload.timestamp === 'string') visible.timestamp = payload.timestamp;
  return { payload: visible, payloadEnc: keyring.encrypt(JSON.stringify(payload), { tenantId, column: jobs.payloadEnc }) };
}

export function openPayload(
  keyring: Keyring,
  row: { tenantId: string | null; payload: unknown; payloadEnc: string | null },
): Record<string, unknown> {
  // Rows written before payload encryption (the seed's own) carry their payload in clear.
  return row.payloadEnc
    ? JSON.parse(keyring.decrypt(row.payloadEnc, { tenantId: row.tenantId, column: jobs.payloadEnc }))
    : (row.payload as Record<string, unknown>);
}

const notify = (db: Db, tenantId: string) => db.execute(sql`SELECT pg_notify(${JOBS_CHANNEL}, ${tenantId})`);

export async function enqueueJobs(db: Db, keyring: Keyring, tenantId: string, items: NewJob[]): Promise<string[]> {
  if (items.length === 0) return [];
  const rows = await db
    .insert(jobs)
    .values(
      items.map((item) => ({
        tenantId,
        jobType: item.jobType,
        ...sealPayload(keyring, tenantId, item.jobType, item.payload),
        ...(item.maxAttempts ? { maxAttempts: item.maxAttempts } : {}),
      })),
    )
    .returning({ id: jobs.id });
  await notify(db, tenantId);
  return rows.map((r) => r.id);
}

export interface TurnJob {
  tenantId: string;
  conversationId: string;
  workflowId: string;
  /** `reply:<first message id>`: the same turn always maps to the same job. */
  replyKey: string;
  messageIds: string[];
  payload: MessageJobPayload | DataLookupJobPayload;
}

const turnJobType = (payload: TurnJob['payload']) => ('job_type' in payload ? payload.job_type : 'message');

/** Writes a conversation turn as a `message` or `data_lookup` job, once per turn however often it is retried. */
export async function enqueueTurnJob(db: Db, keyring: Keyring, turn: TurnJob): Promise<string> {
  const [inserted] = await db
    .insert(jobs)
    .values({
      tenantId: turn.tenantId,
      jobType: turnJobType(turn.payload),
      ...sealPayload(keyring, turn.tenantId, turnJobType(turn.payload), turn.payload),
      conversationId: turn.conversationId,
      workflowId: turn.workflowId,
      replyKey: turn.replyKey,
      messageIds: turn.messageIds,
    })
    .onConflictDoNothing({ target: [jobs.tenantId, jobs.replyKey], where: sql`reply_key IS NOT NULL` })
    .returning({ id: jobs.id });
  if (inserted) {
    await notify(db, turn.tenantId);
    return inserted.id;
  }
  const [existing] = await db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.tenantId, turn.tenantId), eq(jobs.replyKey, turn.replyKey)));
  return existing.id;
}

export interface ClaimedJob {
  id: string;
  jobType: string;
  payload: Record<string, unknown>;
  attempts: number;
  leaseExpiresAt: Date;
}

/**
 * Claims the tenant's oldest due job: a queued one, or one whose lease expired (its worker
 * died) and that has attempts left. SKIP LOCKED lets concurrent pollers pass each other
 * without waiting or double-claiming. Expired jobs out of attempts become `dead` on the way.
 */
export async function claimNextJob(
  db: Db,
  keyring: Keyring,
  opts: { tenantId: string; jobType?: string; leaseSeconds: number },
): Promise<ClaimedJob | null> {
  const { rows } = await db.execute<{
    id: string;
    job_type: string;
    payload: unknown;
    payload_enc: string | null;
    attempts: number;
    lease_expires_at: Date;
  }>(sql`
    WITH dead AS (
      UPDATE jobs SET status = 'dead', lease_expires_at = NULL, finished_at = now(), updated_at = now()
       WHERE tenant_id = ${opts.tenantId} AND status = 'processing' AND lease_expires_at < now() AND attempts >= max_attempts
      RETURNING id
    ), next AS (
      SELECT id FROM jobs
       WHERE tenant_id = ${opts.tenantId} AND status IN ('queued', 'processing')
         AND (status = 'queued' OR lease_expires_at < now()) AND attempts < max_attempts
         AND (${opts.jobType ?? null}::text IS NULL OR job_type = ${opts.jobType ?? null})
       ORDER BY created_at, id
       LIMIT 1
       FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs j
       SET status = 'processing', attempts = j.attempts + 1, updated_at = now(),
           lease_expires_at = now() + ${opts.leaseSeconds}::int * interval '1 second'
      FROM next WHERE j.id = next.id
    RETURNING j.id, j.job_type, j.payload, j.payload_enc, j.attempts, j.lease_expires_at`);
  const row = rows[0];
  if (!row) return null;
  return {
    id: row.id,
    jobType: row.job_type,
    payload: openPayload(keyring, { tenantId: opts.tenantId, payload: row.payload, payloadEnc: row.payload_enc }),
    attempts: row.attempts,
    leaseExpiresAt: new Date(row.lease_expires_at),
  };
}

export async function findJob(db: Db, tenantId: string, jobId: string) {
  const [row] = await db
    .select()
    .from(jobs)
    .where(and(eq(jobs.tenantId, tenantId), eq(jobs.id, jobId)));
  return row;
}

export const jobNotFound = (jobId: string) => notFound('JOB_NOT_FOUND', `job_id: no job "${jobId}"`);
export const jobClosed = (jobId: string, status: string) =>
  conflict('JOB_ALREADY_ANSWERED', `job_id: job "${jobId}" is already ${status}; it takes no further answer`);

/**
 * Finishes an open job as `completed` or `failed` (n8n's /complete and /fail). Returns the
 * conversation workflow waiting for it, if any; a job already finished is a 409.
 */
export async function finishJob(
  db: Db,
  keyring: Keyring,
  opts: { tenantId: string; jobId: string; status: 'completed' | 'failed'; report?: Record<string, unknown> },
): Promise<{ workflowId: string | null }> {
  const [row] = await db
    .update(jobs)
    .set({
      status: opts.status,
      resultEnc: opts.report ? keyring.encrypt(JSON.stringify(opts.report), { tenantId: opts.tenantId, column: jobs.resultEnc }) : null,
      leaseExpiresAt: null,
      finishedAt: sql`now()`,
      updatedAt: sql`now()`,
    })
    .where(and(eq(jobs.tenantId, opts.tenantId), eq(jobs.id, opts.jobId), inArray(jobs.status, OPEN_STATUSES)))
    .returning({ workflowId: jobs.workflowId });
  if (row) return row;
  const existing = await findJob(db, opts.tenantId, opts.jobId);
  if (!existing) throw jobNotFound(opts.jobId);
  throw jobClosed(opts.jobId, existing.status);
}

/**
 * The conversation stopped waiting: an open job becomes `timed_out` (so a late answer gets
 * 409). The update waits for a concurrent /messages/send holding the row, so exactly one of
 * them wins; if the answer won, its outcome is returned and no fallback is sent.
 */
export async function expireTurnJob(db: Db, keyring: Keyring, opts: { tenantId: string; jobId: string }): Promise<JobOutcome> {
  await db
    .update(jobs)
    .set({ status: 'timed_out', leaseExpiresAt: null, finishedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(jobs.tenantId, opts.tenantId), eq(jobs.id, opts.jobId), inArray(jobs.status, OPEN_STATUSES)));
  const job = await findJob(db, opts.tenantId, opts.jobId);
  if (!job) return { outcome: 'timed_out' };
  return outcomeOf(db, keyring, job);
}

async function outcomeOf(db: Db, keyring: Keyring, job: { status: string; replyMessageId: string | null }): Promise<JobOutcome> {
  switch (job.status) {
    case 'completed': {
      if (!job.replyMessageId) return { outcome: 'completed' };
      const [reply] = await db
        .select({ tenantId: messages.tenantId, bodyEnc: messages.bodyEnc, sentAt: messages.sentAt })
        .from(messages)
        .where(eq(messages.id, job.replyMessageId));
      return reply
        ? {
            outcome: 'replied',
            text: keyring.decrypt(reply.bodyEnc, { tenantId: reply.tenantId, column: messages.bodyEnc }),
            sentAt: (reply.sentAt ?? new Date()).toISOString(),
          }
        : { outcome: 'completed' };
    }
    case 'failed':
    case 'dead':
      return { outcome: 'failed' };
    default:
      return { outcome: 'timed_out' };
  }
}
