import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, asc, eq } from 'drizzle-orm';
import { sandboxMessages } from '../../core/db/schema.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, tenantParams } from '../schemas.js';

export const sandboxRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/routes/tenants/:tenant_id/sandbox/messages',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'What the sandbox provider "sent" to a number, oldest first',
          tags: ['sandbox'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({ to: e164, limit: z.coerce.number().int().min(1).max(1000).default(100) }),
          response: {
            200: z.object({
              messages: z.array(
                z.object({
                  id: z.string(),
                  to: z.string(),
                  text: z.string(),
                  in_reply_to: z.array(z.string()),
                  template: z.string().nullable().describe('the approved template used (outside the 24-hour window), else null'),
                  sent_at: z.string(),
                }),
              ),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { to, limit } = request.query;
        const rows = await deps.db
          .select()
          .from(sandboxMessages)
          .where(and(eq(sandboxMessages.tenantId, request.params.tenant_id), eq(sandboxMessages.toHash, deps.keyring.blindIndex(to))))
          .orderBy(asc(sandboxMessages.sentAt), asc(sandboxMessages.id))
          .limit(limit);
        return {
          messages: rows.map((r) => ({
            id: r.id,
            to: deps.keyring.decrypt(r.toEnc, { tenantId: r.tenantId, column: sandboxMessages.toEnc }),
            text: deps.keyring.decrypt(r.textEnc, { tenantId: r.tenantId, column: sandboxMessages.textEnc }),
            in_reply_to: r.inReplyTo ?? [],
            template: r.templateName,
            sent_at: r.sentAt.toISOString(),
          })),
        };
      },
    );
  };
