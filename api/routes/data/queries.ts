import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { lookupPlan } from '../../../core/data-engine/plan.js';
import { CUSTOMER_PHONE, listIntents, loadDataSource, matchIntent } from '../../../core/data-engine/store.js';
import type { DataLookupJob } from '../../../core/data-engine/types.js';
import type { DataLookupWorkflow, LookupOutcome } from '../../../contracts/data-lookup.js';
import { LlmError } from '../../../core/ai/llm.js';
import { loadAiProfile } from '../../../core/ai/profile.js';
import { chooseIntentWithLlm, usableProfile } from '../../../core/ai/seed.js';
import { notFound } from '../../../core/platform/errors.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, e164, errorResponses, tenantId } from '../../schemas.js';
import { loadBodyTenant } from '../../tenant.js';
import { dataWorkflowRunner } from './run-workflow.js';

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
/** The seed's query endpoints: a natural-language question, or a data_lookup job payload, answered from live data. */
export const queryRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const execute = dataWorkflowRunner(deps);

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
        const tenant = await loadBodyTenant(deps.db, request, tenant_id);
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
        const r = await execute<DataLookupWorkflow>(
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
        const tenant = await loadBodyTenant(deps.db, request, job.tenant_id);
        const stored = await loadDataSource(deps.db, deps.keyring, job.tenant_id, job.data_source);
        if (!stored) throw notFound('DATA_SOURCE_NOT_FOUND', `data_source: no data source "${job.data_source}" for this tenant`);
        const phone = job.parameters[CUSTOMER_PHONE];
        const plan = lookupPlan(job.tenant_id, stored, job.query, job.parameters, Object.keys(job.parameters), {
          customerHash: phone ? deps.keyring.blindIndex(phone) : undefined,
        });
        const r = await execute<DataLookupWorkflow>(
          'dataLookupWorkflow',
          [{ plan, fallbackText: tenant.fallbackMessage, notFoundText: tenant.fallbackMessage }],
          job.tenant_id,
        );
        return outcomeBody(r.outcome);
      },
    );
  };
