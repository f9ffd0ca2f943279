import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { eq, sql } from 'drizzle-orm';
import { tenants } from '../../core/db/schema.js';
import { notFound } from '../../core/platform/errors.js';
import { DEFAULT_LEGACY_REPLY_TIMEOUT_S } from '../../core/legacy-queue/jobs.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, tenantParams } from '../schemas.js';

export const TENANT_MODES = ['legacy_n8n', 'native'] as const;

export const legacyModeRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.patch(
      '/routes/tenants/:tenant_id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Switch a tenant between native answers and legacy n8n workers (turns become jobs)',
          description: `In legacy_n8n mode a conversation waits legacy_reply_timeout_s (default ${DEFAULT_LEGACY_REPLY_TIMEOUT_S}) for n8n, then sends the tenant's fallback.`,
          tags: ['tenants'],
          security: bearer,
          params: tenantParams,
          body: z
            .object({
              mode: z.enum(TENANT_MODES),
              legacy_reply_timeout_s: z
                .number()
                .int()
                .min(1)
                .max(24 * 60 * 60)
                .optional(),
            })
            .strict(),
          response: {
            200: z.object({ id: z.string(), mode: z.enum(TENANT_MODES), legacy_reply_timeout_s: z.number() }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { mode, legacy_reply_timeout_s } = request.body;
        const [row] = await deps.db
          .update(tenants)
          .set({
            mode,
            ...(legacy_reply_timeout_s !== undefined
              ? { settings: sql`${tenants.settings} || ${JSON.stringify({ legacy_reply_timeout_s })}::jsonb` }
              : {}),
            updatedAt: sql`now()`,
          })
          .where(eq(tenants.id, request.params.tenant_id))
          .returning({ id: tenants.id, settings: tenants.settings });
        if (!row) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        const timeout = row.settings.legacy_reply_timeout_s;
        return { id: row.id, mode, legacy_reply_timeout_s: typeof timeout === 'number' ? timeout : DEFAULT_LEGACY_REPLY_TIMEOUT_S };
      },
    );
  };
