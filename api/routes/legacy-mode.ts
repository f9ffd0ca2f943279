import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { patchSettings, readSettings, tenantSettingsSchema } from '../../core/tenants/settings.js';
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
              legacy_reply_timeout_s: tenantSettingsSchema.shape.legacy_reply_timeout_s,
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
        const row = await patchSettings(deps.db, request.tenant.id, { legacy_reply_timeout_s }, { mode });
        return { id: row.id, mode, legacy_reply_timeout_s: readSettings(row).legacy_reply_timeout_s ?? DEFAULT_LEGACY_REPLY_TIMEOUT_S };
      },
    );
  };
