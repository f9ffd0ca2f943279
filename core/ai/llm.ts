import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { AiProfile } from './profile.js';

/** Default per-request timeout of LLM and embedding calls (config: AI_REQUEST_TIMEOUT_MS). */
export const DEFAULT_AI_TIMEOUT_MS = 20_000;

/**
 * Why a provider call failed: `retryable` for throttling (429), provider errors (5xx),
 * timeouts and unreachable endpoints; anything else (bad key, unknown model) will not
 * get better by retrying.
 */
export class LlmError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

export function classifyLlmError(err: unknown): LlmError {
  if (err instanceof LlmError) return err;
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new LlmError('LLM request timed out', true);
  if (err instanceof OpenAI.APIConnectionError) return new LlmError('LLM endpoint unreachable', true);
  if (err instanceof OpenAI.APIError) {
    const status = err.status ?? 0;
    return new LlmError(`LLM endpoint answered ${status}`, status === 429 || status >= 500 || status === 408, status);
  }
  return new LlmError(`LLM call failed: ${(err as Error)?.message ?? String(err)}`, false);
}

/** One client per call: profiles change, and Temporal retries are the retry layer (maxRetries 0). */
export function llmClient(profile: Pick<AiProfile, 'baseUrl' | 'apiKey'>, timeoutMs = DEFAULT_AI_TIMEOUT_MS): OpenAI {
  return new OpenAI({ baseURL: profile.baseUrl, apiKey: profile.apiKey, timeout: timeoutMs, maxRetries: 0 });
}

export async function chatCompletion(client: OpenAI, params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion> {
  try {
    return await client.chat.completions.create(params);
  } catch (err) {
    throw classifyLlmError(err);
  }
}

export interface Embedded {
  vectors: number[][];
  promptTokens: number;
}

/** Embeds texts and returns unit vectors (so a dot product is the cosine similarity). */
export async function embedTexts(client: OpenAI, model: string, texts: string[]): Promise<Embedded> {
  let res;
  try {
    res = await client.embeddings.create({ model, input: texts, encoding_format: 'float' });
  } catch (err) {
    throw classifyLlmError(err);
  }
  if (!Array.isArray(res.data) || res.data.length !== texts.length) {
    throw new LlmError(`embeddings endpoint returned ${res.data?.length ?? 0} vectors for ${texts.length} inputs`, false);
  }
  const vectors = [...res.data].sort((a, b) => a.index - b.index).map((d) => normalize(d.embedding));
  return { vectors, promptTokens: res.usage?.prompt_tokens ?? 0 };
}

export function normalize(v: number[]): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm === 0 ? v.map(() => 0) : v.map((x) => x / norm);
}
