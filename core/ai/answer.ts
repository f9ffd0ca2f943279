import { randomBytes } from 'node:crypto';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import type { AiAnswer, AnswerSource, MemoryTurn } from '../../contracts/ai.js';
import type { Db } from '../db/client.js';
import { MIN_KNOWLEDGE_SCORE } from '../knowledge/entries.js';
import { retrieve, type RetrievedChunk } from '../knowledge/retrieval.js';
import { chatCompletion, embedTexts, LlmError, llmClient } from './llm.js';
import { maskPii } from './mask.js';
import type { AiProfile } from './profile.js';
import { buildPrompt, leaksInstructions, parseAnswer } from './prompt.js';
import { HANDOVER_TOOL, toolsForTenant, type AiToolSource } from './tools.js';
import { recordEvent, recordUsage } from './usage.js';

export interface AnswerDeps {
  db: Db;
  tools: AiToolSource[];
  timeoutMs?: number;
}

/** Model turns (tool calls and their results) before the answer must come. */
const MAX_TOOL_ROUNDS = 4;
/** Knowledge chunks put in the prompt. */
const PROMPT_CHUNKS = 5;

const toSource = (c: RetrievedChunk): AnswerSource => ({
  chunk_id: c.chunkId,
  document_id: c.documentId,
  score: Number(c.score.toFixed(6)),
});

/**
 * Answers with the tenant's LLM: embeds the (masked) question, retrieves hybrid, prompts with
 * the profile, memory and excerpts, runs tool calls, and reads back answer and confidence.
 * Below the profile's threshold, or when the model calls `handover`, the result is a handover.
 * Provider failures throw LlmError (retryable for 429/5xx/timeouts).
 */
export async function answerWithLlm(
  deps: AnswerDeps,
  profile: AiProfile,
  input: { conversationId: string | null; question: string; memory: MemoryTurn[]; purpose: 'chat' | 'synthesis'; allowHandover: boolean },
): Promise<AiAnswer> {
  const { db } = deps;
  const tenantId = profile.tenantId;
  const client = llmClient(profile, deps.timeoutMs);
  const masked = maskPii(input.question);

  let query: { model: string; vector: number[] } | undefined;
  try {
    const embedded = await embedTexts(client, profile.embeddingModel, [masked]);
    query = { model: profile.embeddingModel, vector: embedded.vectors[0] };
    await recordUsage(db, {
      tenantId,
      conversationId: input.conversationId,
      purpose: 'embedding',
      model: profile.embeddingModel,
      promptTokens: embedded.promptTokens,
      completionTokens: 0,
    });
  } catch (err) {
    // Full-text retrieval still works; the chat call below decides whether the provider is down.
    if (!(err instanceof LlmError)) throw err;
  }
  const chunks = await retrieve(db, { tenantId, question: input.question, limit: PROMPT_CHUNKS, query });

  const tools = await toolsForTenant(deps.tools, tenantId);
  const canary = `ref-${randomBytes(6).toString('hex')}`;
  const prompt = buildPrompt(profile, {
    question: input.question,
    memory: input.memory,
    chunks,
    canary,
    toolNames: [...tools.keys()],
    allowHandover: input.allowHandover,
  });
  const toolSpecs: ChatCompletionTool[] = [
    ...(input.allowHandover ? [HANDOVER_TOOL] : []),
    ...[...tools.values()].map((t) => ({ name: t.name, description: t.description, parameters: t.parameters })),
  ].map((f) => ({ type: 'function', function: { name: f.name, description: f.description, parameters: { ...f.parameters } } }));

  const messages: ChatCompletionMessageParam[] = [...prompt.messages];
  const cited = (labels: string[]) => {
    const picked = labels.map((l) => prompt.labels.get(l)).filter((c): c is RetrievedChunk => !!c);
    return (picked.length ? picked : chunks).map(toSource);
  };

  for (let round = 0; round <= MAX_TOOL_ROUNDS; round++) {
    const completion = await chatCompletion(client, {
      model: profile.chatModel,
      temperature: profile.temperature,
      messages,
      // The last round must answer: tools stay declared (earlier turns used them) but cannot be called.
      ...(toolSpecs.length ? { tools: toolSpecs, tool_choice: round < MAX_TOOL_ROUNDS ? 'auto' : 'none' } : {}),
    });
    await recordUsage(db, {
      tenantId,
      conversationId: input.conversationId,
      purpose: input.purpose,
      model: profile.chatModel,
      promptTokens: completion.usage?.prompt_tokens ?? 0,
      completionTokens: completion.usage?.completion_tokens ?? 0,
    });
    const message = completion.choices[0]?.message;
    if (!message) throw new LlmError('LLM returned no choice', true);

    const calls = (message.tool_calls ?? []).filter((c) => c.type === 'function');
    if (calls.length) {
      const handover = calls.find((c) => c.function.name === HANDOVER_TOOL.name);
      if (handover && input.allowHandover) {
        const note = readArgs(handover.function.arguments).reason;
        return {
          kind: 'handover',
          reason: 'model_requested',
          note: typeof note === 'string' ? note.slice(0, 500) : undefined,
          confidence: 0,
          sources: cited([]),
        };
      }
      messages.push({ role: 'assistant', content: message.content ?? null, tool_calls: calls });
      for (const call of calls) {
        const tool = tools.get(call.function.name);
        let result: unknown;
        try {
          result = tool
            ? await tool.run({ tenantId, conversationId: input.conversationId }, readArgs(call.function.arguments))
            : { error: `no tool named ${call.function.name}` };
        } catch (err) {
          result = { error: `lookup failed: ${(err as Error).message}`.slice(0, 300) };
        }
        messages.push({ role: 'tool', tool_call_id: call.id, content: maskPii(JSON.stringify(result ?? null)) });
      }
      continue;
    }

    const parsed = parseAnswer(message.content);
    if (!parsed) throw new LlmError('LLM returned an empty answer', true);
    if (leaksInstructions(parsed.answer, prompt)) {
      await recordEvent(db, {
        tenantId,
        conversationId: input.conversationId,
        kind: 'answer_blocked',
        detail: { reason: 'repeated its instructions' },
      });
      return { kind: 'answer', text: '', confidence: 0, sources: [], blocked: true };
    }
    if (input.allowHandover && parsed.confidence < profile.confidenceThreshold) {
      return { kind: 'handover', reason: 'low_confidence', confidence: parsed.confidence, sources: cited(parsed.sources) };
    }
    return { kind: 'answer', text: parsed.answer, confidence: parsed.confidence, sources: cited(parsed.sources) };
  }
  throw new LlmError('LLM kept calling tools without answering', false);
}

function readArgs(raw: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(raw || '{}');
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Without an LLM (none configured, budget spent, provider down): the best full-text chunk
 * when it matches well enough. Confidence scales the rank so a bare threshold match is 0.5.
 */
export async function answerWithoutLlm(
  db: Db,
  tenantId: string,
  question: string,
): Promise<{ text: string; confidence: number; sources: AnswerSource[] } | undefined> {
  const [best] = await retrieve(db, { tenantId, question, limit: 1 });
  if (!best || (best.ftsScore ?? 0) < MIN_KNOWLEDGE_SCORE) return undefined;
  const confidence = Math.min(1, (best.ftsScore ?? 0) / (2 * MIN_KNOWLEDGE_SCORE));
  return { text: best.content, confidence: Number(confidence.toFixed(3)), sources: [toSource(best)] };
}
