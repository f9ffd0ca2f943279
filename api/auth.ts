import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../core/db/client.js';
import { findActiveKey, type Scope } from '../core/tenants/api-keys.js';
import { safeEqual } from '../core/platform/crypto.js';
import { AppError } from '../core/platform/errors.js';

/**
 * What a route requires: no key, the operator's admin key, the admin or ops key (`ops`: operators
 * who may decode Temporal payloads), or a tenant key with a scope (the admin key has every scope).
 */
export type RouteAuth = 'public' | 'operator' | 'ops' | Scope;

export interface RouteEntry {
  method: string;
  url: string;
  auth: RouteAuth | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyInstance {
    /** Every registered route and the auth it declares: the scope and isolation tests walk it. */
    routeCatalog: RouteEntry[];
  }
}

export type Principal = { kind: 'admin' } | { kind: 'ops' } | { kind: 'tenant'; tenantId: string; scopes: Scope[]; keyId: string };

interface AuthDeps {
  db: Db;
  adminApiKey: string;
  opsApiKey?: string;
}

const unauthorized = (message: string) => new AppError(401, 'UNAUTHORIZED', message);

/**
 * Every route must declare `config.auth`; a route without one is refused at start-up, so a
 * new route cannot ship unprotected. Which tenant a key may reach is api/tenant.ts's concern.
 */
export function registerAuth(app: FastifyInstance, deps: AuthDeps): void {
  app.decorate('routeCatalog', []);
  app.addHook('onRoute', (route) => {
    const auth = (route.config as { auth?: RouteAuth } | undefined)?.auth;
    if (!auth && !route.url.startsWith('/docs')) throw new Error(`route ${route.method} ${route.url} declares no config.auth`);
    for (const method of [route.method].flat()) app.routeCatalog.push({ method, url: route.url, auth });
  });

  app.addHook('onRequest', async (request) => {
    const auth = request.routeOptions.config.auth ?? 'public';
    if (auth === 'public') return;
    const principal = await authenticate(request, deps);
    if (auth === 'operator' && principal.kind !== 'admin') throw new AppError(403, 'FORBIDDEN', 'this route needs the operator admin key');
    if (auth === 'ops' && principal.kind === 'tenant')
      throw new AppError(403, 'FORBIDDEN', 'this route needs the operator admin or ops key');
    // The ops key decodes Temporal payloads and nothing else.
    if (principal.kind === 'ops' && auth !== 'ops') throw new AppError(403, 'FORBIDDEN', 'the ops key only opens the codec endpoint');
    if (principal.kind === 'tenant' && auth !== 'operator' && auth !== 'ops' && !principal.scopes.includes(auth)) {
      throw new AppError(403, 'FORBIDDEN', `this key lacks the "${auth}" scope`);
    }
    request.principal = principal;
  });
}

async function authenticate(request: FastifyRequest, deps: AuthDeps): Promise<Principal> {
  const header = request.headers.authorization;
  if (!header) throw unauthorized('Authorization header missing: send "Authorization: Bearer <key>"');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('Authorization header must be "Bearer <key>"');
  const key = match[1];
  if (safeEqual(key, deps.adminApiKey)) return { kind: 'admin' };
  if (deps.opsApiKey && safeEqual(key, deps.opsApiKey)) return { kind: 'ops' };
  const found = await findActiveKey(deps.db, key);
  if (!found) throw unauthorized('API key is invalid or revoked');
  return { kind: 'tenant', tenantId: found.tenantId, scopes: found.scopes, keyId: found.keyId };
}
