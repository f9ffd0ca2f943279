/**
 * Errors that leave the API carry a stable code and a human message naming the problem.
 * The HTTP error mapper (api/errors.ts) turns them into `{ error: { code, message } }`.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds after which a retry may succeed (a Retry-After header), for 429 and 503 answers. */
    readonly retryAfterS?: number,
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

/** What may be logged or stored about an error: never a query's parameters or a value PostgreSQL echoes. */
export interface ErrorSummary {
  name: string;
  code?: string;
  message: string;
}

const POOL_TIMEOUT = 'timeout exceeded when trying to connect';

/** pg's server errors carry a five-character SQLSTATE and a severity. */
function databaseError(err: unknown): { code: string; table?: string; constraint?: string } | undefined {
  for (let e = err as { code?: unknown; severity?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 3; depth++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
      const { table, constraint } = e as { table?: string; constraint?: string };
      return { code: e.code, table, constraint };
    }
    e = e.cause as typeof e;
  }
  return undefined;
}

/** The connection pool had no free connection within its acquire timeout. */
export function isPoolTimeout(err: unknown): boolean {
  for (let e = err as { message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 3; depth++) {
    if (e.message === POOL_TIMEOUT) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * A loggable summary of an error. drizzle's query errors put the SQL and every parameter (a
 * customer's text, a phone number) in their message, and PostgreSQL echoes rejected values in its
 * own, so database errors are reduced to their SQLSTATE and the names of what they concern.
 */
export function summarizeError(err: unknown): ErrorSummary {
  if (isPoolTimeout(err)) return { name: 'PoolTimeout', code: 'DATABASE_BUSY', message: 'no database connection was free in time' };
  const db = databaseError(err);
  if (db) {
    const about = [db.table && `table ${db.table}`, db.constraint && `constraint ${db.constraint}`].filter(Boolean).join(', ');
    return { name: 'DatabaseError', code: db.code, message: `database query failed (SQLSTATE ${db.code}${about ? `, ${about}` : ''})` };
  }
  if (err instanceof Error && err.name === 'Error' && err.message.startsWith('Failed query:')) {
    return { name: 'DatabaseError', message: 'database query failed' };
  }
  if (err instanceof Error) return { name: err.name, code: (err as { code?: string }).code, message: err.message };
  return { name: 'Error', message: String(err) };
}
