import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { issueApiKey, listApiKeys, revokeApiKey, SCOPES } from '../../core/tenants/api-keys.js';
import { notFound } from '../../core/platform/errors.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, tenantParams } from '../schemas.js';

const scope = z.enum(SCOPES);

export const keyRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/routes/tenants/:tenant_id/keys',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Create an API key with scopes; the key is shown once',
          tags: ['keys'],
          security: bearer,
          params: tenantParams,
          body: z
            .object({
              name: z.string().trim().min(1).max(100),
              scopes: z
                .array(scope)
                .min(1, 'must name at least one scope')
                .refine((s) => new Set(s).size === s.length, 'must not repeat a scope'),
            })
            .strict(),
          response: { 201: z.object({ id: z.string(), key: z.string(), prefix: z.string(), scopes: z.array(scope) }), ...errorResponses },
        },
      },
      async (request, reply) => {
        const tenant_id = request.tenant.id;
        const issued = await issueApiKey(deps.db, tenant_id, request.body.name, request.body.scopes);
        return reply.status(201).send(issued);
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/keys',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "The tenant's live keys (prefix only; a key is never shown again)",
          tags: ['keys'],
          security: bearer,
          params: tenantParams,
          response: {
            200: z.object({
              keys: z.array(
                z.object({
                  id: z.string(),
                  prefix: z.string(),
                  name: z.string(),
                  scopes: z.array(scope),
                  created_at: z.string(),
                  last_used_at: z.string().nullable(),
                }),
              ),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const tenant_id = request.tenant.id;
        const rows = await listApiKeys(deps.db, tenant_id);
        return {
          keys: rows.map((k) => ({
            id: k.id,
            prefix: k.prefix,
            name: k.name,
            scopes: k.scopes as (typeof SCOPES)[number][],
            created_at: k.createdAt.toISOString(),
            last_used_at: k.lastUsedAt?.toISOString() ?? null,
          })),
        };
      },
    );

    app.delete(
      '/routes/tenants/:tenant_id/keys/:id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Revoke a key; it fails at once on every replica',
          tags: ['keys'],
          security: bearer,
          params: tenantParams.extend({ id: z.uuid('must be a key id (UUID)') }),
          response: { 204: z.null().describe('revoked'), ...errorResponses },
        },
      },
      async (request, reply) => {
        const { tenant_id, id } = request.params;
        if (!(await revokeApiKey(deps.db, tenant_id, id))) throw notFound('KEY_NOT_FOUND', `id: no live key "${id}"`);
        return reply.status(204).send(null);
      },
    );
  };
