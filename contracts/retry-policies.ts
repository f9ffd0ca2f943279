/**
 * The retry policies workflows schedule activities with, each named once. Which failures end
 * the retries is keyed from the shared failure types the activities throw.
 */

import type { RetryPolicy } from '@temporalio/common';
import { DELIVERY_MAX_ATTEMPTS } from './delivery.js';
import { FailureType } from './failures.js';

/** Failures no retry can fix: bad input, or a tenant, conversation or channel that is gone. */
const PERMANENT: FailureType[] = [FailureType.BadRequest, FailureType.NotFound];

/** Short database steps of a conversation (local activities). */
export const DATABASE_STEP_RETRY: RetryPolicy = {
  initialInterval: '200ms',
  backoffCoefficient: 2,
  maximumInterval: '10s',
  nonRetryableErrorTypes: PERMANENT,
};

/**
 * Planning and answering a turn: a step that keeps failing on the turn's own input stops after
 * about 20 seconds, and the turn is answered with the fallback (failTurn) instead of spinning.
 */
export const TURN_STEP_RETRY: RetryPolicy = { ...DATABASE_STEP_RETRY, maximumAttempts: 8 };

/** An LLM answer: throttling and outages are retried briefly, then the turn falls back to the no-LLM answer. */
export const LLM_REPLY_RETRY: RetryPolicy = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '5s',
  maximumAttempts: 3,
  nonRetryableErrorTypes: PERMANENT,
};

/** One data lookup, retried with backoff inside the lookup budget. */
export const LOOKUP_RETRY: RetryPolicy = {
  initialInterval: '200ms',
  backoffCoefficient: 2,
  maximumInterval: '2s',
  maximumAttempts: 5,
  nonRetryableErrorTypes: PERMANENT,
};

/** The audit row of a lookup: a database write, retried until it lands. */
export const LOOKUP_AUDIT_RETRY: RetryPolicy = { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' };

/** A connectivity check reports what one attempt saw. */
export const SINGLE_ATTEMPT: RetryPolicy = { maximumAttempts: 1 };

/** A send through a real provider: 429/5xx are retried (after Retry-After); a rejection is final. */
export const PROVIDER_SEND_RETRY: RetryPolicy = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '60s',
  maximumAttempts: DELIVERY_MAX_ATTEMPTS,
  nonRetryableErrorTypes: [...PERMANENT, FailureType.ProviderRejected],
};

/** Recording a failed delivery: a database write, retried until it lands. */
export const MARK_FAILED_RETRY: RetryPolicy = { maximumInterval: '10s' };

/** Downloading inbound media from the provider: outages are waited out, a rejection is final. */
export const MEDIA_DOWNLOAD_RETRY: RetryPolicy = {
  initialInterval: '2s',
  backoffCoefficient: 2,
  maximumInterval: '2m',
  maximumAttempts: 10,
  nonRetryableErrorTypes: [FailureType.NotFound, FailureType.ProviderRejected],
};

/** Extracting and chunking a knowledge document. */
export const DOCUMENT_STEP_RETRY: RetryPolicy = {
  initialInterval: '1s',
  maximumInterval: '30s',
  maximumAttempts: 5,
  nonRetryableErrorTypes: PERMANENT,
};

/** Embedding batches go to the tenant's provider: throttling and outages are waited out. */
export const EMBEDDING_RETRY: RetryPolicy = {
  initialInterval: '2s',
  backoffCoefficient: 2,
  maximumInterval: '1m',
  maximumAttempts: 12,
  nonRetryableErrorTypes: PERMANENT,
};

/** Steps of a campaign run (start, page of sends, finish). */
export const PULSE_STEP_RETRY: RetryPolicy = {
  initialInterval: '1s',
  maximumInterval: '30s',
  nonRetryableErrorTypes: PERMANENT,
};

/** The retention purge: long batched deletes, retried a few times. */
export const RETENTION_PURGE_RETRY: RetryPolicy = {
  initialInterval: '10s',
  backoffCoefficient: 2,
  maximumInterval: '5m',
  maximumAttempts: 5,
};

/**
 * One event delivery attempt: the activity records the HTTP outcome itself (the workflow schedules
 * the next HTTP attempt with a timer), so only Parley's own failures (database, worker lost) retry here.
 */
export const EVENT_ATTEMPT_RETRY: RetryPolicy = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '1m',
  nonRetryableErrorTypes: PERMANENT,
};
