import type { FastifyInstance, FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { Config } from '../core/platform/config.js';

/** Who a request counts against: its API key once authenticated, its address otherwise. */
function rateKey(request: FastifyRequest): string {
  const p = request.principal;
  if (!p) return `ip:${request.ip}`;
  return p.kind === 'tenant' ? `key:${p.keyId}` : p.kind;
}

/**
 * Security headers on every answer and a per-key request budget. The limit runs after
 * authentication (preParsing) so it counts keys, not addresses, and before the body is read,
 * so a throttled client costs no parsing. Counters live in each replica's memory: the budget
 * is per key per replica.
 */
export async function registerSecurity(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(helmet, {
    // /docs (Swagger UI) is the only HTML Parley serves; it needs inline styles and data: images.
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        frameAncestors: ["'none'"],
        // Local and embedded deployments serve /docs over plain http.
        upgradeInsecureRequests: null,
      },
    },
    // The codec endpoint is called cross-origin by the Temporal Web UI (CORS decides who may).
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  });
  if (config.RATE_LIMIT_PER_MINUTE === 0) return;
  await app.register(rateLimit, {
    global: true,
    hook: 'preParsing',
    max: config.RATE_LIMIT_PER_MINUTE,
    timeWindow: 60_000,
    keyGenerator: rateKey,
    errorResponseBuilder: (_request, context) =>
      Object.assign(new Error(`rate limit of ${context.max} requests per minute reached; retry in ${context.after}`), { statusCode: 429 }),
  });
}
