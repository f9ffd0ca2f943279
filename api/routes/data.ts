import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { dataSourcesSchema } from '../../core/data-engine/config.js';
import {
  CUSTOMER_PHONE,
  intentSchema,
  listDataSources,
  listIntents,
  loadDataSource,
  lookupMetrics,
  matchIntent,
  replaceDataSources,
  replaceIntents,
} from '../../core/data-engine/store.js';
import { dataWorkerQueue, type DataLookupJob, type LookupOutcome } from '../../core/data-engine/types.js';
import { LlmError } from '../../core/ai/llm.js';
import { loadAiProfile } from '../../core/ai/profile.js';
import { chooseIntentWithLlm, usableProfile } from '../../core/ai/seed.js';
import { notFound } from '../../core/platform/errors.js';
import { findTenant } from '../../core/tenants/tenants.js';
import { lookupPlan } from '../../activities/data.js';
import type { dataLookupWorkflow, dataSourceTestWorkflow } from '../../workflows/data.js';
import { assertTenantAccess } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, tenantId, tenantParams } from '../schemas.js';

const sourceParams = tenantParams.extend({ id: z.string().min(1).max(100) });

const outcomeView = z.object({
  ok: z.boolean(),
  rows: z.array(z.record(z.string(), z.unknown())).describe('SQL rows or the REST/GraphQL JSON objects (first 20)'),
  error: z.string().nullable(),
  response_time_ms: z.number().describe('From the request to the result, retries included'),
  source_time_ms: z.number().nullable().describe("The source's own time, measured by the worker that ran the lookup"),
});

const outcomeBody = (o: LookupOutcome) => ({
  ok: o.ok,
  rows: o.rows,
  error: o.error ?? null,
  response_time_ms: o.totalMs,
  source_time_ms: o.sourceMs ?? null,
});

async function requireTenant(deps: ApiDeps, id: string) {
  const tenant = await findTenant(deps.db, id);
  if (!tenant) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${id}"`);
  return tenant;
}

export const dataRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    async function execute<T>(workflow: string, args: unknown[], tenant: string): Promise<T> {
      return deps.temporal.workflow.execute(workflow, {
        taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
        workflowId: `data/${tenant}/${randomUUID()}`,
        args,
        workflowExecutionTimeout: '30s',
      }) as Promise<T>;
    }

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
      async (request) => {
        await requireTenant(deps, request.params.tenant_id);
        return { count: await replaceDataSources(deps.db, deps.keyring, request.params.tenant_id, request.body.data_sources) };
      },
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
      async (request) => {
        await requireTenant(deps, request.params.tenant_id);
        return { data_sources: await listDataSources(deps.db, deps.keyring, request.params.tenant_id) };
      },
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
      async (request) => {
        await requireTenant(deps, request.params.tenant_id);
        return { metrics: await lookupMetrics(deps.db, request.params.tenant_id) };
      },
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
        // Checked from a worker, where lookups run: the shared queue, or the tenant's own data worker.
        const r = await execute<Awaited<ReturnType<typeof dataSourceTestWorkflow>>>(
          'dataSourceTestWorkflow',
          [
            {
              tenantId: tenant_id,
              dataSourceId: id,
              taskQueue: stored.servedBy === 'tenant_worker' ? dataWorkerQueue(tenant_id) : deps.config.TEMPORAL_TASK_QUEUE,
              tenantWorker: stored.servedBy === 'tenant_worker',
            },
          ],
          tenant_id,
        );
        return { ok: r.ok, latency_ms: r.latencyMs ?? null, error: r.error ?? null, via: stored.servedBy };
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/data-worker-key',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "The key and task queue for the tenant's own data worker (npm run data-worker)",
          description: "The key opens only this tenant's lookup payloads; give it to the worker as PARLEY_DATA_WORKER_KEY.",
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ tenant_id: z.string(), task_queue: z.string(), data_worker_key: z.string() }), ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id } = request.params;
        await requireTenant(deps, tenant_id);
        return {
          tenant_id,
          task_queue: dataWorkerQueue(tenant_id),
          data_worker_key: deps.keyring.dataWorkerKey(tenant_id).toString('base64'),
        };
      },
    );

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
      async (request) => {
        await requireTenant(deps, request.params.tenant_id);
        return { count: await replaceIntents(deps.db, deps.keyring, request.params.tenant_id, request.body.intents) };
      },
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
        await requireTenant(deps, request.params.tenant_id);
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

    app.post(
      '/routes/data/nl-query',
      {
        config: { auth: 'messages' },
        schema: {
          summary:
            "Answer a natural-language question from the tenant's live data: which lookup ran, its parameters, the result and the reply",
          description:
            'Rule-based first: the first intent whose pattern matches (source "rules"). When none matches and the tenant has an AI profile ' +
            'with budget left, the LLM picks one of the tenant\'s intents and its parameters by function calling (source "llm"); ' +
            'if the LLM fails, the rule-based answer stands. customer_phone fills the customer_phone parameter, never the model.',
          tags: ['data'],
          security: bearer,
          body: z.object({ tenant_id: tenantId, question: z.string().trim().min(1).max(2000), customer_phone: e164.optional() }).strict(),
          response: {
            200: z.object({
              matched: z.boolean(),
              source: z.enum(['rules', 'llm']).nullable().describe('Who chose the intent: the patterns or the LLM'),
              intent: z.string().nullable(),
              data_source: z.string().nullable(),
              query: z.string().nullable(),
              parameters: z.record(z.string(), z.string()),
              result: outcomeView.nullable(),
              reply: z.string().nullable(),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { tenant_id, question, customer_phone } = request.body;
        assertTenantAccess(request, tenant_id);
        const tenant = await requireTenant(deps, tenant_id);
        const intents = await listIntents(deps.db, tenant_id);
        let match = matchIntent(intents, question, customer_phone);
        let source: 'rules' | 'llm' = 'rules';
        if (!match) {
          const profile = await usableProfile(deps.db, await loadAiProfile(deps.db, deps.keyring, tenant_id));
          if (profile) {
            try {
              match = await chooseIntentWithLlm(
                { db: deps.db, timeoutMs: deps.config.AI_REQUEST_TIMEOUT_MS },
                profile,
                intents,
                question,
                customer_phone,
              );
              source = 'llm';
            } catch (err) {
              if (!(err instanceof LlmError)) throw err;
              request.log.warn({ tenant_id, status: err.status ?? null }, 'nl-query: LLM unavailable, answering by rules');
            }
          }
        }
        const stored = match && (await loadDataSource(deps.db, deps.keyring, tenant_id, match.intent.dataSourceId));
        if (!match || !stored)
          return { matched: false, source: null, intent: null, data_source: null, query: null, parameters: {}, result: null, reply: null };
        const fallbackText = match.intent.fallbackMessage ?? tenant.fallbackMessage;
        const plan = lookupPlan(tenant_id, stored, match.intent.query, match.params, match.intent.params, {
          customerHash: customer_phone ? deps.keyring.blindIndex(customer_phone) : undefined,
        });
        const r = await execute<Awaited<ReturnType<typeof dataLookupWorkflow>>>(
          'dataLookupWorkflow',
          [{ plan, replyTemplate: match.intent.replyTemplate, fallbackText, notFoundText: match.intent.notFoundMessage ?? fallbackText }],
          tenant_id,
        );
        return {
          matched: true,
          source,
          intent: match.intent.id,
          data_source: match.intent.dataSourceId,
          query: match.intent.query,
          // The caller sent the phone number; the answer does not echo it back.
          parameters: Object.fromEntries(Object.entries(match.params).filter(([k]) => k !== CUSTOMER_PHONE)),
          result: outcomeBody(r.outcome),
          reply: r.reply,
        };
      },
    );

    app.post(
      '/routes/data/lookup',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "Run the seed's data_lookup job payload natively (Parley does the lookup instead of n8n)",
          tags: ['data'],
          security: bearer,
          body: z
            .object({
              job_type: z.literal('data_lookup'),
              tenant_id: tenantId,
              query: z.string().min(1).max(100),
              parameters: z.record(z.string(), z.string().max(1000)),
              data_source: z.string().min(1).max(100),
            })
            .strict(),
          response: { 200: outcomeView, ...errorResponses },
        },
      },
      async (request) => {
        const job: DataLookupJob = request.body;
        assertTenantAccess(request, job.tenant_id);
        const tenant = await requireTenant(deps, job.tenant_id);
        const stored = await loadDataSource(deps.db, deps.keyring, job.tenant_id, job.data_source);
        if (!stored) throw notFound('DATA_SOURCE_NOT_FOUND', `data_source: no data source "${job.data_source}" for this tenant`);
        const phone = job.parameters[CUSTOMER_PHONE];
        const plan = lookupPlan(job.tenant_id, stored, job.query, job.parameters, Object.keys(job.parameters), {
          customerHash: phone ? deps.keyring.blindIndex(phone) : undefined,
        });
        const r = await execute<Awaited<ReturnType<typeof dataLookupWorkflow>>>(
          'dataLookupWorkflow',
          [{ plan, fallbackText: tenant.fallbackMessage, notFoundText: tenant.fallbackMessage }],
          job.tenant_id,
        );
        return outcomeBody(r.outcome);
      },
    );
  };
