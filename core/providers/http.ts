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

export type FailureClass = 'rejected' | 'throttled' | 'unavailable';

/**
 * One HTTP call through the egress policy (a channel's api_base_url is tenant-controlled), its
 * answer read with a byte and time cap. Network errors and timeouts become retryable
 * ProviderUnavailable failures; a refused destination a non-retryable EgressRefused.
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
    throw ApplicationFailure.create({
      type: FailureType.ProviderUnavailable,
      message: `${provider}: request failed (${(err as Error).name})`,
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

/**
 * The failure for a provider's error answer. Rejections are non-retryable (the message can
 * never go out as it is); throttling and outages are retried, after Retry-After when given.
 */
export function providerFailure(kind: FailureClass, details: ProviderErrorDetails, headers?: Headers): ApplicationFailure {
  const type =
    kind === 'rejected'
      ? FailureType.ProviderRejected
      : kind === 'throttled'
        ? FailureType.ProviderThrottled
        : FailureType.ProviderUnavailable;
  const delay = headers ? retryAfterMs(headers) : undefined;
  return ApplicationFailure.create({
    type,
    nonRetryable: kind === 'rejected',
    message: `${details.provider}: ${kind} (HTTP ${details.httpStatus ?? '-'}${details.code ? `, code ${details.code}` : ''})`,
    details: [details],
    ...(kind !== 'rejected' && delay !== undefined ? { nextRetryDelay: Math.max(delay, 1) } : {}),
  });
}

/** Default HTTP-status classification, refined per provider by its error codes. */
export function classifyStatus(status: number): FailureClass {
  if (status === 429) return 'throttled';
  if (status >= 500 || status === 408) return 'unavailable';
  return 'rejected';
}

export function baseUrl(channelOverride: string | null, fallback: string): string {
  return (channelOverride ?? fallback).replace(/\/+$/, '');
}
