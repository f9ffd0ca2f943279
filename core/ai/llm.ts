import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { AiProfile } from './profile.js';
import { cappedFetch, findEgressRefusal, ResponseTooLargeError } from '../platform/egress.js';
import { FailureType } from '../platform/errors.js';

/** Default per-request timeout of LLM and embedding calls (config: AI_REQUEST_TIMEOUT_MS). */
export const DEFAULT_AI_TIMEOUT_MS = 20_000;
/** A chat answer or a batch of embeddings is well below this; a bigger body is cut off, not buffered. */
const MAX_LLM_RESPONSE_BYTES = 32 * 1024 * 1024;

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
    /** The Temporal failure type when it is not the usual LlmUnavailable/BadRequest split. */
    readonly failureType?: FailureType,
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

export function classifyLlmError(err: unknown): LlmError {
  if (err instanceof LlmError) return err;
  const refused = findEgressRefusal(err);
  if (refused) return new LlmError(refused.message, false, undefined, FailureType.EgressRefused);
  if ((err as { cause?: unknown })?.cause instanceof ResponseTooLargeError) return new LlmError('LLM response too large', false);
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new LlmError('LLM request timed out', true);
  if (err instanceof OpenAI.APIConnectionError) return new LlmError('LLM endpoint unreachable', true);
  if (err instanceof OpenAI.APIError) {
    const status = err.status ?? 0;
    return new LlmError(`LLM endpoint answered ${status}`, status === 429 || status >= 500 || status === 408, status);
  }
  return new LlmError(`LLM call failed: ${(err as Error)?.message ?? String(err)}`, false);
}

/**
 * One client per call: profiles change, and Temporal retries are the retry layer (maxRetries 0).
 * The base_url is the tenant's: requests go through the egress policy, answers are read capped.
 */
export function llmClient(profile: Pick<AiProfile, 'baseUrl' | 'apiKey'>, timeoutMs = DEFAULT_AI_TIMEOUT_MS): OpenAI {
  return new OpenAI({
    baseURL: profile.baseUrl,
    apiKey: profile.apiKey,
    timeout: timeoutMs,
    maxRetries: 0,
    fetch: cappedFetch({ maxBytes: MAX_LLM_RESPONSE_BYTES, timeoutMs }),
  });
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
