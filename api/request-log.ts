import type { FastifyInstance, FastifyRequest } from 'fastify';

const ERROR_CODE = /^\{"error":\{"code":"([A-Z0-9_]+)"/;

/**
 * One log line per request, on response: method, route (the pattern, never the URL: paths and
 * query strings may carry phone numbers or keys), status, duration and, for an error, the stable
 * code the client got. It replaces fastify's two lines per request (turned off in api/app.ts).
 * Errors the client caused are info; 5xx are warn, and an unexpected 5xx also has its stack
 * logged once by the error mapper (api/errors.ts).
 */
export function registerRequestLog(app: FastifyInstance): void {
  const codes = new WeakMap<FastifyRequest, string>();
  const infoEnabled = ['trace', 'debug', 'info'].includes(app.log.level);
  app.addHook('onSend', async (request, reply, payload) => {
    const code = reply.statusCode >= 400 && typeof payload === 'string' ? ERROR_CODE.exec(payload)?.[1] : undefined;
    if (code) codes.set(request, code);
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const failed = reply.statusCode >= 500;
    if (!failed && !infoEnabled) return;
    const code = codes.get(request);
    const fields = {
      method: request.method,
      route: request.routeOptions.url ?? null,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(code ? { code } : {}),
    };
    if (failed) request.log.warn(fields, 'request');
    else request.log.info(fields, 'request');
  });
}
