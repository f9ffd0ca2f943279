import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dataSourcesSchema } from '../../../core/data-engine/config.js';
import { listDataSources, loadDataSource, lookupMetrics, replaceDataSources } from '../../../core/data-engine/store.js';
import { notFound } from '../../../core/platform/errors.js';
import type { DataSourceTestWorkflow } from '../../../contracts/data-lookup.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, errorResponses, tenantParams } from '../../schemas.js';
import { dataWorkflowRunner } from './run-workflow.js';

const sourceParams = tenantParams.extend({ id: z.string().min(1).max(100) });

/** The tenant's data sources: configuration, metrics, a connection test, and the key for its own data worker. */
export const dataSourceRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const execute = dataWorkflowRunner(deps);

    app.put(
      '/routes/tenants/:tenant_id/data-sources',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "Replace the tenant's data sources (postgresql, mysql, rest_api, graphql); secrets are encrypted at rest",
          description: 'A secret sent back as "********" (what GET shows) keeps the stored value; any other value rotates it.',
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          body: dataSourcesSchema,
          response: { 200: z.object({ count: z.number() }), ...errorResponses },
        },
      },
      async (request) => ({ count: await replaceDataSources(deps.db, deps.keyring, request.params.tenant_id, request.body.data_sources) }),
    );

    app.get(
      '/routes/tenants/:tenant_id/data-sources',
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's data sources, every secret redacted",
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ data_sources: z.array(z.record(z.string(), z.unknown())) }), ...errorResponses },
        },
      },
      async (request) => ({ data_sources: await listDataSources(deps.db, deps.keyring, request.params.tenant_id) }),
    );

    app.get(
      '/routes/tenants/:tenant_id/data-sources/metrics',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Lookups of the last 24 hours per data source and hour: average response time, count, errors',
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          response: {
            200: z.object({
              metrics: z.array(
                z.object({
                  data_source_id: z.string(),
                  hour: z.string(),
                  avg_response_time: z.number(),
                  query_count: z.number(),
                  error_count: z.number(),
                }),
              ),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => ({ metrics: await lookupMetrics(deps.db, request.params.tenant_id) }),
    );

    app.post(
      '/routes/tenants/:tenant_id/data-sources/:id/test',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Check that a data source answers; reports its latency or the error (never its credentials)',
          tags: ['data'],
          security: bearer,
          params: sourceParams,
          response: {
            200: z.object({
              ok: z.boolean(),
              latency_ms: z.number().nullable(),
              error: z.string().nullable(),
              via: z.enum(['parley', 'tenant_worker']),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { tenant_id, id } = request.params;
        const stored = await loadDataSource(deps.db, deps.keyring, tenant_id, id);
        if (!stored) throw notFound('DATA_SOURCE_NOT_FOUND', `id: no data source "${id}" for this tenant`);
        // Checked from a worker, where lookups run; a tenant_worker source's check goes on to the tenant's data worker.
        const r = await execute<DataSourceTestWorkflow>(
          'dataSourceTestWorkflow',
          [
            {
              tenantId: tenant_id,
              dataSourceId: id,
              taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
              tenantWorker: stored.servedBy === 'tenant_worker',
            },
          ],
          tenant_id,
        );
        return { ok: r.ok, latency_ms: r.latencyMs ?? null, error: r.error ?? null, via: stored.servedBy };
      },
    );
  };
