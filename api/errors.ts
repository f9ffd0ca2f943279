import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError } from '../core/errors.js';

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

/** The one HTTP error mapper: every error leaves as `{ error: { code, message } }`; 5xx never expose internals. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof AppError) return reply.status(err.status).send(body(err.code, err.message));
    if (hasZodFastifySchemaValidationErrors(err)) {
      const first = err.validation[0];
      const where = describePath(err.validationContext, first.instancePath);
      const more = err.validation.length > 1 ? ` (and ${err.validation.length - 1} more)` : '';
      return reply.status(400).send(body('VALIDATION_FAILED', `${where}: ${first.message}${more}`));
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[err.code] ?? (status === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST');
      return reply.status(status).send(body(code, err.message));
    }
    request.log.error({ err: { message: err.message, code: err.code, stack: err.stack } }, 'request failed');
    return reply.status(500).send(body('INTERNAL', 'internal error; the request was not completed'));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(body('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}
