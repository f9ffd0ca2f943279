import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEFAULT_OPT_IN_CONFIRMATION, DEFAULT_OPT_OUT_CONFIRMATION, DEFAULT_OPT_OUT_KEYWORDS } from '../../../core/pulse/contacts.js';
import { patchSettings, readSettings, tenantSettingsSchema, type TenantSettings } from '../../../core/tenants/settings.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, errorResponses, tenantParams } from '../../schemas.js';
import { tags } from './schemas.js';

const settingsBody = tenantSettingsSchema.pick({ opt_out_keywords: true, opt_out_confirmation: true, opt_in_confirmation: true });

const settingsView = z.object({
  opt_out_keywords: z.array(z.string()),
  opt_out_confirmation: z.string(),
  opt_in_confirmation: z.string(),
});

const settingsOf = (s: TenantSettings) => ({
  opt_out_keywords: [...DEFAULT_OPT_OUT_KEYWORDS, ...(s.opt_out_keywords ?? [])],
  opt_out_confirmation: s.opt_out_confirmation ?? DEFAULT_OPT_OUT_CONFIRMATION,
  opt_in_confirmation: s.opt_in_confirmation ?? DEFAULT_OPT_IN_CONFIRMATION,
});

/** Opt-out keywords and confirmations: part of the tenant's settings (core/tenants/settings.ts). */
export const settingsRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.put(
      '/routes/tenants/:tenant_id/pulse/settings',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Opt-out keywords and the confirmations sent when a customer opts out or back in',
          tags,
          security: bearer,
          params: tenantParams,
          body: settingsBody,
          response: { 200: settingsView, ...errorResponses },
        },
      },
      async (request) => settingsOf(readSettings(await patchSettings(deps.db, request.tenant.id, request.body))),
    );
    app.get(
      '/routes/tenants/:tenant_id/pulse/settings',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Opt-out settings',
          tags,
          security: bearer,
          params: tenantParams,
          response: { 200: settingsView, ...errorResponses },
        },
      },
      async (request) => settingsOf(readSettings(request.tenant)),
    );
  };
