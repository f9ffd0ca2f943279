import { isIPv6 } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { Config } from '../core/platform/config.js';

/**
 * The client a request's address stands for: an IPv4 address, or the /64 of an IPv6 address (one
 * subscriber holds a whole /64, so per-address counting would not hold it back).
 */
export function addressBucket(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const address = ip.split('%')[0].toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (mapped) return mapped[1];
  const [head, tail] = address.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const size = (gs: string[]) => gs.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const full =
    tail === undefined
      ? groups(head)
      : [...groups(head), ...Array<string>(8 - size(groups(head)) - size(groups(tail))).fill('0'), ...groups(tail)];
  return `${full
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** Who a request counts against: its API key once authenticated, its address otherwise. */
function rateKey(request: FastifyRequest): string {
  const p = request.principal;
  if (!p) return `ip:${addressBucket(request.ip)}`;
  return p.kind === 'tenant' ? `key:${p.keyId}` : p.kind;
}

const WINDOW_MS = 60_000;
/** Addresses tracked at once; past it the oldest are forgotten, so a flood of addresses cannot exhaust memory. */
const MAX_TRACKED = 100_000;

/** Failed authentications per client address (addressBucket), in fixed one-minute windows. */
class AuthFailureCounter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  constructor(private readonly max: number) {}

  /** Seconds until `address` may try again; 0 while it is under the limit. */
  blockedFor(address: string, now = Date.now()): number {
    const w = this.windows.get(address);
    if (!w || w.resetAt <= now || w.count < this.max) return 0;
    return Math.ceil((w.resetAt - now) / 1000);
  }

  /** Counts one failure; true when it is the one that reaches the limit. */
  record(address: string, now = Date.now()): boolean {
    let w = this.windows.get(address);
    if (!w || w.resetAt <= now) {
      this.windows.delete(address);
      if (this.windows.size >= MAX_TRACKED) this.windows.delete(this.windows.keys().next().value!);
      w = { count: 0, resetAt: now + WINDOW_MS };
      this.windows.set(address, w);
    }
    return ++w.count === this.max;
  }
}

/**
 * Key guessing is throttled per client address: every 401 (a bad API key, a webhook signature or
 * secret that does not verify) counts, and an address past AUTH_FAILURES_PER_MINUTE gets 429 on
 * every request until its minute ends, before any key is checked, so even a right guess is not
 * confirmed. Successful requests never count. Registered before authentication (api/app.ts).
 */
export function registerAuthThrottle(app: FastifyInstance, config: Config): void {
  if (config.AUTH_FAILURES_PER_MINUTE === 0) return;
  const failures = new AuthFailureCounter(config.AUTH_FAILURES_PER_MINUTE);
  app.addHook('onRequest', async (request, reply) => {
    const wait = failures.blockedFor(addressBucket(request.ip));
    if (wait === 0) return;
    return reply
      .status(429)
      .header('retry-after', String(wait))
      .send({ error: { code: 'RATE_LIMITED', message: `too many failed authentications from this address; retry in ${wait} s` } });
  });
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode === 401 && failures.record(addressBucket(request.ip))) {
      request.log.warn(
        { ip: request.ip, limit: config.AUTH_FAILURES_PER_MINUTE },
        'failed authentications over the limit: address throttled',
      );
    }
    return payload;
  });
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
