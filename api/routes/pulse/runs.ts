import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findCampaign } from '../../../core/pulse/campaigns.js';
import { listRuns } from '../../../core/pulse/runs.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, errorResponses } from '../../schemas.js';
import { campaignParams, campaignsPath, tags } from './schemas.js';

const runView = z.object({
  run_id: z.string(),
  status: z.string(),
  targeted: z.number(),
  sent: z.number(),
  failed: z.number(),
  skipped_opted_out: z.number(),
  skipped_window: z.number(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
});

/** A campaign's runs and their per-run counts. */
export const runRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      `${campaignsPath}/:id/runs`,
      {
        config: { auth: 'read' },
        schema: {
          summary: "A campaign's runs, newest first, with per-run counts",
          tags,
          security: bearer,
          params: campaignParams,
          querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }),
          response: { 200: z.object({ runs: z.array(runView) }), ...errorResponses },
        },
      },
      async (request) => {
        await findCampaign(deps.db, request.params.tenant_id, request.params.id);
        return { runs: await listRuns(deps.db, request.params.tenant_id, request.params.id, request.query.limit) };
      },
    );
  };
