import { ApplicationFailure } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { FailureType, summarizeError } from '../core/platform/errors.js';

/**
 * SQLSTATE classes a retry cannot fix, since the statement or its input caused them: data
 * exceptions (22), syntax or access errors (42), program limits such as `stack depth limit
 * exceeded` (54). A connection loss, a deadlock or a pool timeout is retried.
 */
const INPUT_SQLSTATE_CLASSES: ReadonlySet<string> = new Set(['22', '42', '54']);

/**
 * An activity's failure message and stack land in the workflow history and the worker's log.
 * A database error's message holds the SQL and every parameter (a customer's text, a phone
 * number), so it leaves as a `DatabaseError` (a pool timeout too) naming only its SQLSTATE; every other
 * failure passes through unchanged.
 */
export const scrubActivityFailures: ActivityInterceptorsFactory = () => ({
  inbound: {
    async execute(input, next) {
      try {
        return await next(input);
      } catch (err) {
        const summary = summarizeError(err);
        if (summary.name !== 'DatabaseError' && summary.name !== 'PoolTimeout') throw err;
        throw ApplicationFailure.create({
          type: FailureType.DatabaseError,
          message: summary.message,
          nonRetryable: INPUT_SQLSTATE_CLASSES.has(summary.code?.slice(0, 2) ?? ''),
        });
      }
    },
  },
});
