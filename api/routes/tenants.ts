import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Tenant } from '../../core/db/schema.js';
import { patchSettings, readSettings, tenantSettingsSchema } from '../../core/tenants/settings.js';
import { createTenant } from '../../core/tenants/tenants.js';
import { replaceKnowledge } from '../../core/knowledge/entries.js';
import { findAiProfileRow } from '../../core/ai/profile.js';
import { startKnowledgeIngest } from '../../core/knowledge/start-ingest.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantId, tenantParams } from '../schemas.js';

const fallbackMessage = z.string().trim().min(1).max(4096);

const tenantView = z.object({
  id: z.string(),
  name: z.string(),
  mode: z.string(),
  fallback_message: z.string(),
  debounce_ms: z.number().nullable(),
  settings: tenantSettingsSchema.describe('Every setting the tenant has set; an absent key takes its default'),
  created_at: z.string(),
});

function view(tenant: Tenant): z.infer<typeof tenantView> {
  const settings = readSettings(tenant);
  return {
    id: tenant.id,
    name: tenant.name,
    mode: tenant.mode,
    fallback_message: tenant.fallbackMessage,
    debounce_ms: settings.debounce_ms ?? null,
    settings,
    created_at: tenant.createdAt.toISOString(),
  };
}

export const tenantRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/routes/tenants',
      {
        config: { auth: 'operator' },
        schema: {
          summary: 'Create a tenant; returns its first API key (shown once)',
          tags: ['tenants'],
          security: bearer,
          body: z.object({
            id: tenantId,
            name: z.string().trim().min(1).max(200),
            fallback_message: fallbackMessage.optional(),
          }),
          response: { 201: z.object({ id: z.string(), api_key: z.string() }), 409: errorSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        const { tenant, key } = await createTenant(deps.db, request.body);
        return reply.status(201).send({ id: tenant.id, api_key: key.key });
      },
    );

    app.get(
      '/routes/tenants/:tenant_id',
      {
        config: { auth: 'read' },
        schema: {
          summary: "A tenant's settings",
          tags: ['tenants'],
          security: bearer,
          params: tenantParams,
          response: { 200: tenantView, ...errorResponses },
        },
      },
      async (request) => view(request.tenant),
    );

    app.patch(
      '/routes/tenants/:tenant_id/settings',
      {
        config: { auth: 'admin' },
        schema: {
          summary:
            'Change conversation settings: fallback message, burst debounce, legacy reply timeout, opt-out keywords and confirmations',
          description: 'Keys not sent keep their value. Unknown keys and invalid values answer 400 naming the field, and change nothing.',
          tags: ['tenants'],
          security: bearer,
          params: tenantParams,
          body: tenantSettingsSchema.extend({ fallback_message: fallbackMessage.optional() }),
          response: { 200: tenantView, ...errorResponses },
        },
      },
      async (request) => {
        const { fallback_message, ...settings } = request.body;
        const row = await patchSettings(
          deps.db,
          request.tenant.id,
          settings,
          fallback_message !== undefined ? { fallbackMessage: fallback_message } : {},
        );
        return view(row);
      },
    );

    app.put(
      '/routes/tenants/:tenant_id/knowledge',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "Replace the tenant's knowledge entries (answers found by full-text search)",
          tags: ['knowledge'],
          security: bearer,
          params: tenantParams,
          body: z.object({
            entries: z.array(z.object({ title: z.string().trim().min(1).max(500), content: z.string().trim().min(1).max(4096) })).max(5000),
          }),
          response: { 200: z.object({ count: z.number() }), ...errorResponses },
        },
      },
      async (request) => {
        const count = await replaceKnowledge(deps.db, request.params.tenant_id, request.body.entries);
        // Entries are chunked (and full-text searchable) at once; embeddings follow in a workflow.
        if (count > 0 && (await findAiProfileRow(deps.db, request.params.tenant_id))) {
          await startKnowledgeIngest(deps.temporal, deps.config.TEMPORAL_TASK_QUEUE, { tenantId: request.params.tenant_id });
        }
        return { count };
      },
    );
  };
