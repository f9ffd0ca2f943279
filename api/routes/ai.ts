import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, desc, eq, sql } from 'drizzle-orm';
import type { AnswerSource } from '../../contracts/ai.js';
import { answerWithLlm, answerWithoutLlm } from '../../core/ai/answer.js';
import { LlmError } from '../../core/ai/llm.js';
import { findAiProfileRow, loadAiProfile, putAiProfile, redactKey } from '../../core/ai/profile.js';
import { budgetExhausted, monthlyUsage, monthOf } from '../../core/ai/usage.js';
import { aiEvents, aiProfiles, conversations, type AiProfileRow } from '../../core/db/schema.js';
import { notFound } from '../../core/platform/errors.js';
import { hasPendingChunks, resetEmbeddings } from '../../core/knowledge/documents.js';
import { startKnowledgeIngest } from '../../core/knowledge/start-ingest.js';
import { loadBodyTenant } from '../tenant.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, tenantId, tenantParams } from '../schemas.js';

const text = (max: number) => z.string().trim().min(1).max(max);

const profileBody = z
  .object({
    base_url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1' }),
    api_key: text(500),
    chat_model: text(200),
    embedding_model: text(200),
    business_description: text(4000).optional(),
    tone: text(200).optional(),
    language: text(50).optional(),
    temperature: z.number().min(0).max(2).optional(),
    monthly_token_budget: z.number().int().min(0).nullable().optional(),
    confidence_threshold: z.number().min(0).max(1).optional(),
  })
  .strict();

const profileView = z.object({
  base_url: z.string(),
  api_key: z.string().describe('redacted'),
  chat_model: z.string(),
  embedding_model: z.string(),
  business_description: z.string().nullable(),
  tone: z.string().nullable(),
  language: z.string().nullable(),
  temperature: z.number(),
  monthly_token_budget: z.number().nullable(),
  confidence_threshold: z.number(),
  updated_at: z.string(),
});

const sourceSchema = z.object({ chunk_id: z.string(), document_id: z.string(), score: z.number() });

export const aiRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const view = (row: AiProfileRow, apiKey: string): z.infer<typeof profileView> => ({
      base_url: row.baseUrl,
      api_key: redactKey(apiKey),
      chat_model: row.chatModel,
      embedding_model: row.embeddingModel,
      business_description: row.businessDescription,
      tone: row.tone,
      language: row.language,
      temperature: row.temperature,
      monthly_token_budget: row.monthlyTokenBudget,
      confidence_threshold: row.confidenceThreshold,
      updated_at: row.updatedAt.toISOString(),
    });

    app.put(
      '/routes/tenants/:tenant_id/ai',
      {
        config: { auth: 'admin' },
        schema: {
          summary: "Set the tenant's AI profile (OpenAI-compatible endpoint, models, prompt context, budget, confidence threshold)",
          description:
            'The API key is stored encrypted and never returned. A new endpoint or embedding model re-embeds the knowledge base.',
          tags: ['ai'],
          security: bearer,
          params: tenantParams,
          body: profileBody,
          response: { 200: profileView, ...errorResponses },
        },
      },
      async (request) => {
        const tenant_id = request.tenant.id;
        const { embeddingsChanged } = await putAiProfile(deps.db, deps.keyring, tenant_id, request.body);
        if (embeddingsChanged) {
          await resetEmbeddings(deps.db, tenant_id);
          if (await hasPendingChunks(deps.db, tenant_id))
            await startKnowledgeIngest(deps.temporal, deps.config.TEMPORAL_TASK_QUEUE, { tenantId: tenant_id });
        }
        const row = await findAiProfileRow(deps.db, tenant_id);
        return view(row!, request.body.api_key);
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/ai',
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's AI profile (key redacted)",
          tags: ['ai'],
          security: bearer,
          params: tenantParams,
          response: { 200: profileView, ...errorResponses },
        },
      },
      async (request) => {
        const row = await findAiProfileRow(deps.db, request.params.tenant_id);
        if (!row) throw notFound('AI_PROFILE_NOT_FOUND', `tenant_id: tenant "${request.params.tenant_id}" has no AI profile`);
        return view(row, deps.keyring.decrypt(row.apiKeyEnc, { tenantId: row.tenantId, column: aiProfiles.apiKeyEnc }));
      },
    );

    app.delete(
      '/routes/tenants/:tenant_id/ai',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Remove the AI profile: the tenant answers from its knowledge base without an LLM',
          tags: ['ai'],
          security: bearer,
          params: tenantParams,
          response: { 204: z.null(), ...errorResponses },
        },
      },
      async (request, reply) => {
        const deleted = await deps.db
          .delete(aiProfiles)
          .where(eq(aiProfiles.tenantId, request.params.tenant_id))
          .returning({ id: aiProfiles.tenantId });
        if (!deleted.length) throw notFound('AI_PROFILE_NOT_FOUND', `tenant_id: tenant "${request.params.tenant_id}" has no AI profile`);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/ai/usage',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Tokens used in a month (UTC), from the provider usage fields, against the monthly budget',
          tags: ['ai'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({
            month: z
              .string()
              .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be YYYY-MM')
              .optional(),
            conversation_id: z.uuid('must be a conversation id (UUID)').optional(),
          }),
          response: {
            200: z.object({ month: z.string(), prompt_tokens: z.number(), completion_tokens: z.number(), budget: z.number().nullable() }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const tenant_id = request.tenant.id;
        const month = request.query.month ?? monthOf();
        const used = await monthlyUsage(deps.db, tenant_id, month, request.query.conversation_id);
        const profile = await findAiProfileRow(deps.db, tenant_id);
        return {
          month,
          prompt_tokens: used.promptTokens,
          completion_tokens: used.completionTokens,
          budget: profile?.monthlyTokenBudget ?? null,
        };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/ai/events',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'AI events, newest first: handover, budget_exhausted, llm_error, answer_blocked',
          tags: ['ai'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) }),
          response: {
            200: z.object({
              events: z.array(
                z.object({
                  kind: z.string(),
                  conversation_id: z.string().nullable(),
                  detail: z.record(z.string(), z.unknown()),
                  created_at: z.string(),
                }),
              ),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const rows = await deps.db
          .select()
          .from(aiEvents)
          .where(eq(aiEvents.tenantId, request.params.tenant_id))
          .orderBy(desc(aiEvents.id))
          .limit(request.query.limit);
        return {
          events: rows.map((e) => ({
            kind: e.kind,
            conversation_id: e.conversationId,
            detail: e.detail,
            created_at: e.createdAt.toISOString(),
          })),
        };
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/conversations/:conversation_id/resume-bot',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Give a handed-over conversation back to the bot (clears needs_human)',
          tags: ['ai', 'conversations'],
          security: bearer,
          params: tenantParams.extend({ conversation_id: z.uuid('must be a conversation id (UUID)') }),
          response: { 200: z.object({ id: z.string(), needs_human: z.boolean() }), ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, conversation_id } = request.params;
        const [row] = await deps.db
          .update(conversations)
          .set({ needsHuman: false, handoverReason: null, handoverNoteEnc: null, handedOverAt: null, updatedAt: sql`now()` })
          .where(and(eq(conversations.id, conversation_id), eq(conversations.tenantId, tenant_id)))
          .returning({ id: conversations.id, needsHuman: conversations.needsHuman });
        if (!row) throw notFound('CONVERSATION_NOT_FOUND', `conversation_id: no conversation "${conversation_id}"`);
        return { id: row.id, needs_human: row.needsHuman };
      },
    );

    app.post(
      '/routes/tools/synthesis',
      {
        config: { auth: 'messages' },
        schema: {
          summary: "Answer a question from the tenant's knowledge base, with the source chunks and a confidence",
          description:
            'With an AI profile (and budget left) the LLM answers from hybrid-retrieved chunks; otherwise the best full-text chunk, else the fallback message with confidence 0.',
          tags: ['ai'],
          security: bearer,
          body: z.object({ tenant_id: tenantId, question: text(4000) }),
          response: { 200: z.object({ answer: z.string(), sources: z.array(sourceSchema), confidence: z.number() }), ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, question } = request.body;
        const tenant = await loadBodyTenant(deps.db, request, tenant_id);
        const fallback = { answer: tenant.fallbackMessage, sources: [] as AnswerSource[], confidence: 0 };
        const profile = await loadAiProfile(deps.db, deps.keyring, tenant_id);
        if (profile && !(await budgetExhausted(deps.db, tenant_id, profile.monthlyTokenBudget))) {
          try {
            const result = await answerWithLlm({ db: deps.db, tools: [], timeoutMs: deps.config.AI_REQUEST_TIMEOUT_MS }, profile, {
              conversationId: null,
              question,
              memory: [],
              purpose: 'synthesis',
              allowHandover: false,
            });
            if (result.kind === 'answer')
              return result.blocked ? fallback : { answer: result.text, sources: result.sources, confidence: result.confidence };
          } catch (err) {
            if (!(err instanceof LlmError)) throw err;
            request.log.warn({ tenant_id, status: err.status ?? null }, 'synthesis: LLM unavailable, answering without it');
          }
        }
        const plain = await answerWithoutLlm(deps.db, tenant_id, question);
        return plain ? { answer: plain.text, sources: plain.sources, confidence: plain.confidence } : fallback;
      },
    );
  };
