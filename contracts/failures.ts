/**
 * Temporal failure types: the contract between activities that throw
 * `ApplicationFailure.create({ type, nonRetryable })` and the retry policies that match them.
 */
export const FailureType = {
  /** Input that can never succeed; retrying is pointless. */
  BadRequest: 'BadRequest',
  /** The referenced tenant, conversation or channel no longer exists. */
  NotFound: 'NotFound',
  /** The provider refused the message for good (bad number, window closed, template missing). */
  ProviderRejected: 'ProviderRejected',
  /** The provider is throttling; retried with backoff. */
  ProviderThrottled: 'ProviderThrottled',
  /** The LLM or embeddings endpoint is throttling (429), failing (5xx) or unreachable; retried with backoff. */
  LlmUnavailable: 'LlmUnavailable',
  /** The provider did not take the message (connection refused, or it answered with its own error); retried with backoff. */
  ProviderUnavailable: 'ProviderUnavailable',
  /**
   * A send may or may not have reached the provider (a timeout after the request was written, a
   * 5xx from a gateway, a 2xx without a message id): retried, and the retry reconciles before it sends.
   */
  ProviderOutcomeUnknown: 'ProviderOutcomeUnknown',
  /** A tenant's data source is down, slow or erroring; retried with backoff within the lookup budget. */
  DataSourceUnavailable: 'DataSourceUnavailable',
  /** A knowledge ingestion could not embed its chunks (the ingest workflow's own failure). */
  EmbeddingFailed: 'EmbeddingFailed',
  /** Parley's own database failed or had no free connection; retried. Names only the SQLSTATE, never a parameter. */
  DatabaseError: 'DatabaseError',
  /** A tenant-configured destination the egress policy refuses (core/platform/egress.ts); never retried. */
  EgressRefused: 'EgressRefused',
  /** A newer attempt of the same campaign page is running (core/pulse/send.ts): this one stops without sending. */
  AttemptSuperseded: 'AttemptSuperseded',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const NON_RETRYABLE_FAILURES: string[] = [
  FailureType.BadRequest,
  FailureType.NotFound,
  FailureType.ProviderRejected,
  FailureType.EgressRefused,
];
