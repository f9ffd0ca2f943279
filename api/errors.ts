import type { FastifyError, FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, isPoolTimeout, summarizeError } from '../core/platform/errors.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

const body = (code: string, message: string): ErrorBody => ({ error: { code, message } });

/** Fastify's own 4xx errors, renamed to stable codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
};

function describePath(context: string | undefined, instancePath: string): string {
  const field = instancePath.replace(/^\//, '').replaceAll('/', '.');
  return [context, field].filter(Boolean).join('.') || 'request';
}

/**
 * Errors fastify's router raises before any route runs (a malformed URL, a path segment over
 * maxParamLength). Its default answer echoes the URL, which may carry a phone number.
 */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (err, _request, reply) => {
  const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path segment is too long' : 'the URL is malformed';
  // The reply is typed per route generic here; this answer fits every route.
  void (reply as unknown as FastifyReply).status(400).send(body('BAD_REQUEST', message));
};

/** PostgreSQL text cannot hold NUL: it refuses such a value (22021, 22P05) and nothing is written. */
function isUnstorableText(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 3; e = e.cause as typeof e, depth++) {
    if (e.code === '22021' || e.code === '22P05') return true;
  }
  return false;
}

/** The one HTTP error mapper: every error leaves as `{ error: { code, message } }`; 5xx never expose internals. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof AppError) {
      if (err.retryAfterS !== undefined) void reply.header('retry-after', String(err.retryAfterS));
      // A 500 AppError (a stored value that failed authentication) is for operators to see; its message names no value.
      if (err.status === 500) request.log.error({ code: err.code, message: err.message }, 'request failed');
      return reply.status(err.status).send(body(err.code, err.message));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const first = err.validation[0];
      const where = describePath(err.validationContext, first.instancePath);
      const more = err.validation.length > 1 ? ` (and ${err.validation.length - 1} more)` : '';
      return reply.status(400).send(body('VALIDATION_FAILED', `${where}: ${first.message}${more}`));
    }
    if (isUnstorableText(err)) {
      return reply.status(400).send(body('INVALID_TEXT', 'body: text must not contain NUL (\\u0000) characters'));
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[err.code] ?? (status === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST');
      return reply.status(status).send(body(code, err.message));
    }
    if (isPoolTimeout(err)) {
      request.log.warn({ code: 'DATABASE_BUSY' }, 'no database connection free in time');
      return reply
        .status(503)
        .header('retry-after', '1')
        .send(body('DATABASE_BUSY', 'the database is busy: no connection was free in time; retry shortly'));
    }
    // Database errors carry the query's parameters in their message and stack: log the summary only.
    const summary = summarizeError(err);
    request.log.error({ err: summary.name === 'DatabaseError' ? summary : { ...summary, stack: err.stack } }, 'request failed');
    return reply.status(500).send(body('INTERNAL', 'internal error; the request was not completed'));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(body('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}
