/**
 * Errors that leave the API carry a stable code and a human message naming the problem.
 * The HTTP error mapper (api/errors.ts) turns them into `{ error: { code, message } }`.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (code: string, message: string) => new AppError(400, code, message);
export const notFound = (code: string, message: string) => new AppError(404, code, message);
export const conflict = (code: string, message: string) => new AppError(409, code, message);

/** The failure types shared with workflows (activities throw them, retry policies match them). */
export { FailureType, NON_RETRYABLE_FAILURES } from '../../contracts/failures.js';
