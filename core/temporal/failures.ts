import { ApplicationFailure } from '@temporalio/common';
import { LlmError } from '../ai/llm.js';
import { AppError, FailureType } from '../platform/errors.js';

/**
 * How an activity hands a core error to Temporal, as a failure of the shared types the retry
 * policies match: an AppError (a missing row, a bad request) can never succeed on retry; an
 * LLM error is retried when the endpoint throttled or failed, not when it refused the request.
 * Anything else is rethrown as it is and retried by the activity's policy.
 */
export function toActivityFailure(err: unknown): never {
  if (err instanceof AppError) {
    throw ApplicationFailure.create({
      type: err.status === 404 ? FailureType.NotFound : FailureType.BadRequest,
      message: err.message,
      nonRetryable: true,
    });
  }
  if (err instanceof LlmError) {
    throw ApplicationFailure.create({
      type: err.failureType ?? (err.retryable ? FailureType.LlmUnavailable : FailureType.BadRequest),
      message: err.message,
      nonRetryable: !err.retryable,
    });
  }
  throw err;
}

/** Runs a core function on behalf of an activity, with its errors mapped by toActivityFailure. */
export async function asActivity<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    return toActivityFailure(err);
  }
}
