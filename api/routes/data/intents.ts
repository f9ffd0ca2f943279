import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { intentSchema, listIntents, replaceIntents } from '../../../core/data-engine/store.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, errorResponses, tenantParams } from '../../schemas.js';

/** The tenant's intents: question patterns mapped to lookups and reply templates. */
export const intentRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.put(
      '/routes/tenants/:tenant_id/intents',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "Replace the tenant's intents: question patterns (regex with named captures) mapped to lookups and reply templates",
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          body: z.object({ intents: z.array(intentSchema).max(200) }).strict(),
          response: { 200: z.object({ count: z.number() }), ...errorResponses },
        },
      },
      async (request) => ({ count: await replaceIntents(deps.db, deps.keyring, request.params.tenant_id, request.body.intents) }),
    );

    app.get(
      '/routes/tenants/:tenant_id/intents',
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's intents",
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ intents: z.array(z.record(z.string(), z.unknown())) }), ...errorResponses },
        },
      },
      async (request) => {
        const rows = await listIntents(deps.db, request.params.tenant_id);
        return {
          intents: rows.map((r) => ({
            id: r.id,
            patterns: r.patterns,
            data_source: r.dataSourceId,
            query: r.query,
            params: r.params,
            reply_template: r.replyTemplate,
            ...(r.fallbackMessage ? { fallback_message: r.fallbackMessage } : {}),
            ...(r.notFoundMessage ? { not_found_message: r.notFoundMessage } : {}),
          })),
        };
      },
    );
  };
