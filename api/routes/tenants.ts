import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { eq, sql } from 'drizzle-orm';
import { tenants } from '../../core/db/schema.js';
import { notFound } from '../../core/platform/errors.js';
import { createTenant, findTenant } from '../../core/tenants/tenants.js';
import { replaceKnowledge } from '../../core/knowledge/entries.js';
import { findAiProfileRow } from '../../core/ai/profile.js';
import { startKnowledgeIngest } from '../../core/knowledge/start-ingest.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantId, tenantParams } from '../schemas.js';

const tenantView = z.object({
  id: z.string(),
  name: z.string(),
  mode: z.string(),
  fallback_message: z.string(),
  debounce_ms: z.number().nullable(),
  created_at: z.string(),
});

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
            fallback_message: z.string().trim().min(1).max(4096).optional(),
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
      async (request) => {
        const tenant = await findTenant(deps.db, request.params.tenant_id);
        if (!tenant) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        return {
          id: tenant.id,
          name: tenant.name,
          mode: tenant.mode,
          fallback_message: tenant.fallbackMessage,
          debounce_ms: typeof tenant.settings.debounce_ms === 'number' ? tenant.settings.debounce_ms : null,
          created_at: tenant.createdAt.toISOString(),
        };
      },
    );

    app.patch(
      '/routes/tenants/:tenant_id/settings',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Change conversation settings: fallback message, burst debounce window',
          tags: ['tenants'],
          security: bearer,
          params: tenantParams,
          body: z
            .object({
              fallback_message: z.string().trim().min(1).max(4096).optional(),
              debounce_ms: z.number().int().min(0).max(60_000).optional(),
            })
            .strict(),
          response: { 200: z.object({ id: z.string() }), ...errorResponses },
        },
      },
      async (request) => {
        const { fallback_message, debounce_ms } = request.body;
        const [row] = await deps.db
          .update(tenants)
          .set({
            ...(fallback_message !== undefined ? { fallbackMessage: fallback_message } : {}),
            ...(debounce_ms !== undefined ? { settings: sql`${tenants.settings} || ${JSON.stringify({ debounce_ms })}::jsonb` } : {}),
            updatedAt: sql`now()`,
          })
          .where(eq(tenants.id, request.params.tenant_id))
          .returning({ id: tenants.id });
        if (!row) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        return row;
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
        if (!(await findTenant(deps.db, request.params.tenant_id))) {
          throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        }
        const count = await replaceKnowledge(deps.db, request.params.tenant_id, request.body.entries);
        // Entries are chunked (and full-text searchable) at once; embeddings follow in a workflow.
        if (count > 0 && (await findAiProfileRow(deps.db, request.params.tenant_id))) {
          await startKnowledgeIngest(deps.temporal, deps.config.TEMPORAL_TASK_QUEUE, { tenantId: request.params.tenant_id });
        }
        return { count };
      },
    );
  };
