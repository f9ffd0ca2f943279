import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../core/db/client.js';
import type { Tenant } from '../core/db/schema.js';
import { notFound } from '../core/platform/errors.js';
import { findTenant } from '../core/tenants/tenants.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant of a route under /routes/tenants/:tenant_id, loaded before its handler runs (unset on other routes). */
    tenant: Tenant;
  }
}

/** Routes whose path names the tenant: the tenant itself and everything under it. */
const TENANT_ROUTE = /^\/routes\/tenants\/:tenant_id(\/|$)/;

const foreignTenant = (id: string) => notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${id}" for this key`);
const unknownTenant = (id: string) => notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${id}"`);

/**
 * Tenant isolation for every route under /routes/tenants/:tenant_id. A tenant key naming
 * another tenant gets 404 before its body is read, never a hint that the tenant exists; after
 * validation the tenant is loaded once (404 when unknown) and handlers read `request.tenant`.
 * Scopes stay with the auth hook, which runs first.
 */
export function registerTenantScope(app: FastifyInstance, deps: { db: Db }): void {
  app.decorateRequest('tenant', null as unknown as Tenant);
  const tenantParam = (request: FastifyRequest) =>
    TENANT_ROUTE.test(request.routeOptions.url ?? '') ? (request.params as { tenant_id: string }).tenant_id : undefined;

  app.addHook('onRequest', async (request) => {
    const id = tenantParam(request);
    if (id !== undefined) assertTenantAccess(request, id);
  });
  app.addHook('preHandler', async (request) => {
    const id = tenantParam(request);
    if (id === undefined) return;
    const tenant = await findTenant(deps.db, id);
    if (!tenant) throw unknownTenant(id);
    request.tenant = tenant;
  });
}

/** For routes that carry the tenant in the body (the seed's payloads): the key must own it. */
export function assertTenantAccess(request: FastifyRequest, tenantId: string): void {
  const p = request.principal;
  if (p?.kind === 'tenant' && p.tenantId !== tenantId) throw foreignTenant(tenantId);
}

/** The tenant a body names, once the key may use it: 404 when it is not the key's or does not exist. */
export async function loadBodyTenant(db: Db, request: FastifyRequest, tenantId: string): Promise<Tenant> {
  assertTenantAccess(request, tenantId);
  const tenant = await findTenant(db, tenantId);
  if (!tenant) throw unknownTenant(tenantId);
  return tenant;
}
