import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../platform/errors.js';
import { egressFailure, egressFetch, findEgressRefusal, readCapped } from '../platform/egress.js';

/** A provider API answer is small JSON; anything bigger is not one. */
const MAX_PROVIDER_RESPONSE_BYTES = 1024 * 1024;

export interface ProviderSettings {
  timeoutMs: number;
  metaGraphUrl: string;
  metaApiVersion: string;
  twilioApiUrl: string;
  infobipApiUrl: string;
  /** When set, Twilio sends carry a StatusCallback to PUBLIC_BASE_URL/webhooks/twilio. */
  publicBaseUrl?: string;
}

export const DEFAULT_PROVIDER_SETTINGS: ProviderSettings = {
  timeoutMs: 10_000,
  metaGraphUrl: 'https://graph.facebook.com',
  metaApiVersion: 'v21.0',
  twilioApiUrl: 'https://api.twilio.com',
  infobipApiUrl: 'https://api.infobip.com',
};

export interface ProviderResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

/** What a failed provider call carries in ApplicationFailure details: enough to record, nothing personal. */
export interface ProviderErrorDetails {
  provider: string;
  httpStatus?: number;
  code?: string;
  title?: string;
}

export type FailureClass = 'rejected' | 'throttled' | 'unavailable' | 'unknown';

/** Errors raised before a request could be written: the provider never saw it. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function neverConnected(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && NOT_CONNECTED.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * One HTTP call through the egress policy (a channel's api_base_url is tenant-controlled), its
 * answer read with a byte and time cap. A refused destination is a non-retryable EgressRefused.
 * A call that never connected is ProviderUnavailable (the provider never saw it); any other
 * network failure of a POST (a timeout, a reset after the request was written, a body cut
 * short) is ProviderOutcomeUnknown, because the provider may have taken the message.
 */
export async function providerFetch(provider: string, url: string, init: RequestInit, timeoutMs: number): Promise<ProviderResponse> {
  const deadline = Date.now() + timeoutMs;
  let status: number;
  let headers: Headers;
  let text: string;
  try {
    const res = await egressFetch(url, { ...(init as Parameters<typeof egressFetch>[1]), signal: AbortSignal.timeout(timeoutMs) });
    status = res.status;
    headers = res.headers as unknown as Headers;
    text = (await readCapped(res, { maxBytes: MAX_PROVIDER_RESPONSE_BYTES, timeoutMs: Math.max(1, deadline - Date.now()) })).toString(
      'utf8',
    );
  } catch (err) {
    const refused = findEgressRefusal(err);
    if (refused) throw egressFailure(refused);
    const reads = (init.method ?? 'GET') === 'GET';
    const unknown = !reads && !neverConnected(err);
    throw ApplicationFailure.create({
      type: unknown ? FailureType.ProviderOutcomeUnknown : FailureType.ProviderUnavailable,
      message: `${provider}: ${unknown ? 'no answer after the request was sent' : 'request failed'} (${(err as Error).name})`,
      details: [{ provider } satisfies ProviderErrorDetails],
    });
  }
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: keep the text for classification */
  }
  return { status, headers, body };
}

/** Retry-After as seconds or an HTTP date, in milliseconds; undefined when absent or unusable. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const value = headers.get('retry-after');
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const FAILURE_TYPES: Record<FailureClass, FailureType> = {
  rejected: FailureType.ProviderRejected,
  throttled: FailureType.ProviderThrottled,
  unavailable: FailureType.ProviderUnavailable,
  unknown: FailureType.ProviderOutcomeUnknown,
};

/**
 * The failure for a provider's error answer. Rejections are non-retryable (the message can
 * never go out as it is); throttling and outages are retried, after Retry-After when given; an
 * unknown outcome is retried too, and the retry reconciles first (core/messaging/reconcile.ts).
 */
export function providerFailure(kind: FailureClass, details: ProviderErrorDetails, headers?: Headers): ApplicationFailure {
  const type = FAILURE_TYPES[kind];
  const delay = headers ? retryAfterMs(headers) : undefined;
  return ApplicationFailure.create({
    type,
    nonRetryable: kind === 'rejected',
    message: `${details.provider}: ${kind} (HTTP ${details.httpStatus ?? '-'}${details.code ? `, code ${details.code}` : ''})`,
    details: [details],
    ...(kind !== 'rejected' && delay !== undefined ? { nextRetryDelay: Math.max(delay, 1) } : {}),
  });
}

/**
 * Default HTTP-status classification, refined per provider by its error codes. A 5xx that carries
 * the provider's own error object is the provider saying it did not take the message; a bare 5xx
 * (a gateway's 502/504, an HTML page) may come after the provider accepted it: outcome unknown.
 */
export function classifyStatus(status: number, providerError = true): FailureClass {
  if (status === 429) return 'throttled';
  if (status >= 500) return providerError ? 'unavailable' : 'unknown';
  if (status === 408) return 'unavailable';
  return 'rejected';
}

export function baseUrl(channelOverride: string | null, fallback: string): string {
  return (channelOverride ?? fallback).replace(/\/+$/, '');
}
