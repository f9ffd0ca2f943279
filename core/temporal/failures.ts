import { ApplicationFailure } from '@temporalio/common';
import { AppError, FailureType } from '../platform/errors.js';

/**
 * How an activity hands a core error to Temporal: an AppError (a missing row, a bad request)
 * can never succeed on retry, so it becomes a non-retryable failure of the shared type; anything
 * else is rethrown as it is and retried by the activity's policy.
 */
export function toActivityFailure(err: unknown): never {
  if (err instanceof AppError) {
    throw ApplicationFailure.create({
      type: err.status === 404 ? FailureType.NotFound : FailureType.BadRequest,
      message: err.message,
      nonRetryable: true,
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
