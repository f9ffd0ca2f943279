import type { AnswerTurnInput, PlanTurnInput, SentReply, TurnPlan } from '../../contracts/conversation.js';
import { aiRoute } from '../ai/route.js';
import { planDataLookup } from '../data-engine/plan.js';
import { MIN_KNOWLEDGE_SCORE, searchKnowledge } from '../knowledge/entries.js';
import { planLegacyTurn } from '../legacy-queue/plan.js';
import type { OutboundDeps } from '../messaging/outbound.js';
import { notFound } from '../platform/errors.js';
import { applyConsentKeyword } from '../pulse/contacts.js';
import { readSettings } from '../tenants/settings.js';
import { loadTurnContext } from './context.js';
import { sendReply } from './reply.js';

/**
 * How a turn is answered, in order:
 *   1. consent keywords (STOP / UNSUBSCRIBE / START) flip consent and are confirmed, not answered;
 *   2. once a person has taken over, the bot stays silent;
 *   3. legacy-mode tenants hand the turn to n8n as a job;
 *   4. a question one of the tenant's intents recognises is looked up in its own systems;
 *   5. with the LLM when the tenant has an AI profile and budget left,
 *   6. else from its knowledge,
 *   7. else with its fallback message.
 */
export async function planTurn(deps: OutboundDeps, input: PlanTurnInput): Promise<TurnPlan> {
  const { db, keyring } = deps;
  const tenant = await loadTurnContext(db, input.tenantId, input.conversationId);
  if (!tenant) throw notFound('TENANT_NOT_FOUND', 'tenant no longer exists');

  const consent = await applyConsentKeyword(db, {
    tenantId: input.tenantId,
    contactId: tenant.contactId,
    settings: readSettings(tenant),
    texts: input.messages.map((m) => m.text),
  });
  if (consent) return { kind: 'reply', text: consent.confirmation, source: 'consent' };

  const route = await aiRoute(db, input.tenantId, tenant);
  if (route === 'human') return { kind: 'human' };

  if (tenant.mode === 'legacy_n8n') return planLegacyTurn({ db, keyring }, input, tenant);

  const question = input.messages.map((m) => m.text).join('\n');
  const lookup = tenant.hasIntents
    ? await planDataLookup(db, keyring, { tenantId: input.tenantId, phoneEnc: tenant.phoneEnc, text: question }, tenant.fallback)
    : undefined;
  if (lookup) return lookup;

  // The knowledge answer (or the fallback) is also what an LLM turn falls back to.
  const [best] = await searchKnowledge(db, input.tenantId, question, 1);
  const noLlm =
    best && best.score >= MIN_KNOWLEDGE_SCORE
      ? ({ kind: 'reply', text: best.content, source: 'knowledge', knowledgeId: best.id } as const)
      : ({ kind: 'reply', text: tenant.fallback, source: 'fallback' } as const);
  return route === 'llm' ? { kind: 'ai', noLlm, fallbackText: tenant.fallback } : noLlm;
}

/**
 * planTurn, and for a plain reply its send too, in one step: one workflow activation and one
 * activity dispatch fewer for most turns. A retry re-plans, and the reply key keeps the send single.
 */
export async function answerTurn(deps: OutboundDeps, input: AnswerTurnInput): Promise<{ plan: TurnPlan; sent?: SentReply }> {
  const { reply, ...turn } = input;
  const plan = await planTurn(deps, turn);
  if (plan.kind !== 'reply') return { plan };
  const sent = await sendReply(deps, {
    ...reply,
    text: plan.text,
    source: plan.source,
    sourceChunkIds: plan.knowledgeId ? [plan.knowledgeId] : undefined,
  });
  return { plan, sent };
}
