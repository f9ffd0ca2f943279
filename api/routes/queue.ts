import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../core/platform/errors.js';
import { claimNextJob, enqueueJobs, finishJob, findJob, jobNotFound, JOB_STATUSES } from '../../core/legacy-queue/jobs.js';
import { JobNotifier } from '../../core/legacy-queue/notifier.js';
import { jobAnsweredSignal, type JobAnswer } from '../../contracts/conversation.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantId } from '../schemas.js';

/** The longest long-poll: below common proxy idle timeouts. */
export const MAX_WAIT_S = 30;
/** A long-poll re-checks at least this often, for expired leases and missed notifications. */
const RECHECK_MS = 1_000;

const jobType = z.string().regex(/^[a-z][a-z0-9_]{0,39}$/, 'must be a job type: lowercase letters, digits and underscores');
const jobParams = z.object({ job_id: z.uuid('must be a job id (UUID)') });

/** The Data Engine seed's lookup job; extra fields (customer_context, …) are kept for n8n. */
const dataLookupJob = z
  .object({
    job_type: z.literal('data_lookup'),
    tenant_id: tenantId,
    query: z.string().trim().min(1).max(1000),
    parameters: z.record(z.string(), z.unknown()).default({}),
    data_source: z.string().trim().min(1).max(200),
  })
  .loose();

const jobView = z.object({
  job_id: z.string(),
  job_type: z.string(),
  status: z.enum(JOB_STATUSES),
  attempts: z.number(),
  max_attempts: z.number(),
  lease_expires_at: z.string().nullable(),
  conversation_id: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

/** The queue's tenant is the key's: a tenant key only ever sees its own jobs. */
export function queueTenant(request: FastifyRequest): string {
  const p = request.principal;
  if (p?.kind !== 'tenant')
    throw new AppError(403, 'TENANT_KEY_REQUIRED', 'the job queue is per tenant: use a tenant API key, not the admin key');
  return p.tenantId;
}

/** Tells the waiting conversation workflow; if this fails its timeout finds the answer in the job row. */
export async function signalAnswer(deps: ApiDeps, log: FastifyBaseLogger, workflowId: string | null, answer: JobAnswer): Promise<void> {
  if (!workflowId) return;
  try {
    await deps.temporal.workflow.getHandle(workflowId).signal(jobAnsweredSignal, answer);
  } catch (err) {
    log.warn(
      { err: { name: (err as Error).name }, jobId: answer.jobId },
      'could not signal the conversation; it settles the job at its timeout',
    );
  }
}

export const queueRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const notifier = new JobNotifier(deps.pool.options);
    // Before the server waits for in-flight requests: long polls end (204) instead of holding shutdown.
    app.addHook('preClose', () => notifier.close());

    app.get(
      '/queue/next-job',
      {
        config: { auth: 'queue' },
        schema: {
          summary: "Claim the oldest due job of the key's tenant (the legacy n8n poll)",
          description:
            'Leases the job (QUEUE_LEASE_S, default 120 s): a job whose worker dies is handed out again when its lease ' +
            'expires, up to its max attempts, then becomes `dead`. `wait` long-polls up to 30 s for a job to arrive.',
          tags: ['queue'],
          security: bearer,
          querystring: z.object({
            job_type: jobType.optional(),
            wait: z.coerce.number().int().min(0).max(MAX_WAIT_S, `must be at most ${MAX_WAIT_S} seconds`).default(0),
          }),
          response: {
            200: z.object({ job_id: z.string(), payload: z.record(z.string(), z.unknown()), status: z.literal('processing') }),
            204: z.null().describe('No job is due'),
            ...errorResponses,
          },
        },
      },
      async (request, reply) => {
        const tenant = queueTenant(request);
        const deadline = Date.now() + request.query.wait * 1000;
        for (;;) {
          // A poller that hung up must not be handed a job it will never see.
          if (request.raw.socket?.destroyed) return reply.status(204).send(null);
          const job = await claimNextJob(deps.db, deps.keyring, {
            tenantId: tenant,
            jobType: request.query.job_type,
            leaseSeconds: deps.config.QUEUE_LEASE_S,
          });
          if (job) return { job_id: job.id, payload: job.payload, status: 'processing' as const };
          const left = deadline - Date.now();
          if (left <= 0 || notifier.isClosed) return reply.status(204).send(null);
          await notifier.wait(tenant, Math.min(left, RECHECK_MS));
        }
      },
    );

    app.post(
      '/queue/jobs',
      {
        config: { auth: 'queue' },
        schema: {
          summary: "Enqueue a data_lookup job (the Data Engine payload) for the tenant's n8n workers",
          tags: ['queue'],
          security: bearer,
          body: dataLookupJob,
          response: { 201: z.object({ job_id: z.string(), status: z.literal('queued') }), ...errorResponses },
        },
      },
      async (request, reply) => {
        const tenant = queueTenant(request);
        if (request.body.tenant_id !== tenant) throw tenantMismatch(request.body.tenant_id);
        const [id] = await enqueueJobs(deps.db, deps.keyring, tenant, [{ jobType: 'data_lookup', payload: request.body }]);
        return reply.status(201).send({ job_id: id, status: 'queued' as const });
      },
    );

    app.get(
      '/queue/jobs/:job_id',
      {
        config: { auth: 'queue' },
        schema: {
          summary: "A job's status, attempts and lease (never its payload)",
          tags: ['queue'],
          security: bearer,
          params: jobParams,
          response: { 200: jobView, ...errorResponses },
        },
      },
      async (request) => {
        const job = await findJob(deps.db, queueTenant(request), request.params.job_id);
        if (!job) throw jobNotFound(request.params.job_id);
        return {
          job_id: job.id,
          job_type: job.jobType,
          status: job.status as (typeof JOB_STATUSES)[number],
          attempts: job.attempts,
          max_attempts: job.maxAttempts,
          lease_expires_at: job.leaseExpiresAt?.toISOString() ?? null,
          conversation_id: job.conversationId,
          created_at: job.createdAt.toISOString(),
          updated_at: job.updatedAt.toISOString(),
        };
      },
    );

    const finished = z.object({ job_id: z.string(), status: z.enum(['completed', 'failed']) });

    app.post(
      '/queue/jobs/:job_id/complete',
      {
        config: { auth: 'queue' },
        schema: {
          summary: 'Mark a job done when the n8n flow answered some other way (no fallback is sent)',
          tags: ['queue'],
          security: bearer,
          params: jobParams,
          body: z.object({ result: z.record(z.string(), z.unknown()).optional() }).nullish(),
          response: { 200: finished, 409: errorSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { job_id } = request.params;
        const result = request.body?.result;
        const { workflowId } = await finishJob(deps.db, deps.keyring, {
          tenantId: queueTenant(request),
          jobId: job_id,
          status: 'completed',
          report: result ? { result } : undefined,
        });
        await signalAnswer(deps, request.log, workflowId, { jobId: job_id, outcome: 'completed' });
        return { job_id, status: 'completed' as const };
      },
    );

    app.post(
      '/queue/jobs/:job_id/fail',
      {
        config: { auth: 'queue' },
        schema: {
          summary: 'Mark a job failed; a waiting conversation sends its fallback at once',
          tags: ['queue'],
          security: bearer,
          params: jobParams,
          body: z.object({ error: z.string().max(4000).optional() }).nullish(),
          response: { 200: finished, 409: errorSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { job_id } = request.params;
        const error = request.body?.error;
        const { workflowId } = await finishJob(deps.db, deps.keyring, {
          tenantId: queueTenant(request),
          jobId: job_id,
          status: 'failed',
          report: error ? { error } : undefined,
        });
        await signalAnswer(deps, request.log, workflowId, { jobId: job_id, outcome: 'failed' });
        return { job_id, status: 'failed' as const };
      },
    );
  };

export const tenantMismatch = (bodyTenant: string) =>
  new AppError(403, 'TENANT_MISMATCH', `tenant_id: "${bodyTenant}" is not the tenant of this API key`);
