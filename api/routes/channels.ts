import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createChannel, createChannelBody, listChannels, redactedCredentials } from '../../core/providers/channels.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantParams } from '../schemas.js';

const channelView = z.object({
  id: z.string(),
  provider: z.string(),
  display_phone_number: z.string().nullable(),
  routing_key: z.string().nullable().describe('Meta phone_number_id, or the Twilio/Infobip number in digits'),
  api_base_url: z.string().nullable(),
  rate_per_second: z.number(),
  team: z.string().nullable(),
  is_default: z.boolean(),
  template: z.object({ name: z.string(), language: z.string() }).nullable(),
  credentials: z.record(z.string(), z.string()).describe('Identifiers shown, secrets "[redacted]"'),
  created_at: z.string(),
});

export const channelRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/routes/tenants/:tenant_id/channels',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Register a WhatsApp number with its provider and credentials (encrypted at rest)',
          description:
            "Inbound webhooks are routed by the provider's identifier (Meta phone_number_id, Twilio `To`, the Infobip channel URL). " +
            "A tenant's first non-sandbox channel becomes its default for replies.",
          tags: ['channels'],
          security: bearer,
          params: tenantParams,
          body: createChannelBody,
          response: { 201: z.object({ id: z.string() }), 409: errorSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        const channel = await createChannel(deps.db, deps.keyring, request.tenant.id, request.body);
        return reply.status(201).send({ id: channel.id });
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/channels',
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's numbers, credentials redacted",
          tags: ['channels'],
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ channels: z.array(channelView) }), ...errorResponses },
        },
      },
      async (request) => {
        const rows = await listChannels(deps.db, request.tenant.id);
        return {
          channels: rows.map((c) => ({
            id: c.id,
            provider: c.provider,
            display_phone_number: c.displayPhoneNumber,
            routing_key: c.routingKey,
            api_base_url: c.apiBaseUrl,
            rate_per_second: c.ratePerSecond,
            team: c.team,
            is_default: c.isDefault,
            template: c.reopenTemplate ?? null,
            credentials: redactedCredentials(deps.keyring, c),
            created_at: c.createdAt.toISOString(),
          })),
        };
      },
    );
  };
