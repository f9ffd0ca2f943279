import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { notFound } from '../../core/platform/errors.js';
import { sendLegacyMessage } from '../../core/legacy-queue/send.js';
import { findTenant } from '../../core/tenants/tenants.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, errorSchema, tenantId } from '../schemas.js';
import { MAX_TEXT } from './inbound.js';
import { signalAnswer, tenantMismatch } from './queue.js';

export const messageRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/messages/send',
      {
        config: { auth: 'messages' },
        schema: {
          summary: "Send a WhatsApp message through the tenant's provider (the legacy n8n reply)",
          description:
            'With `job_id` the message answers that job: the job completes and the waiting conversation records the reply ' +
            'instead of sending its fallback. A job answers once: a second send for it is 409 and sends nothing. ' +
            "Like every send it keeps the number's rate and WhatsApp's 24-hour window: outside the window the channel's " +
            'reopen template goes out instead (`status: "template_sent"`), or, without one, the answer is 409 WINDOW_CLOSED and nothing is sent. ' +
            'A tenant with `max_concurrent_sends` sends already in flight gets 429 SEND_CAP_REACHED with `Retry-After`, and nothing is sent or recorded.',
          tags: ['messages'],
          security: bearer,
          body: z.object({
            to: e164,
            message: z.string().min(1, 'must not be empty').max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`),
            tenant_id: tenantId,
            job_id: z.uuid('must be a job id (UUID)').optional(),
          }),
          response: {
            200: z.object({ message_id: z.string(), status: z.enum(['sent', 'template_sent']) }),
            409: errorSchema,
            429: errorSchema.describe(
              'SEND_CAP_REACHED: the tenant has max_concurrent_sends sends in flight; retry after Retry-After seconds',
            ),
            502: errorSchema,
            503: errorSchema.describe('DATABASE_BUSY: no database connection was free in time; retry after Retry-After seconds'),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { to, message, tenant_id, job_id } = request.body;
        const p = request.principal;
        if (p?.kind === 'tenant' && p.tenantId !== tenant_id) throw tenantMismatch(tenant_id);
        if (p?.kind === 'admin' && !(await findTenant(deps.db, tenant_id)))
          throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${tenant_id}"`);
        const sent = await sendLegacyMessage(deps, { tenantId: tenant_id, to, text: message, jobId: job_id });
        if (job_id)
          await signalAnswer(deps, request.log, sent.workflowId, { jobId: job_id, outcome: 'replied', text: message, sentAt: sent.sentAt });
        return { message_id: sent.messageId, status: sent.via === 'template' ? ('template_sent' as const) : ('sent' as const) };
      },
    );
  };
