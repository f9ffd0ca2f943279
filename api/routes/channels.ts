import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Channel } from '../../core/db/schema.js';
import {
  createChannel,
  createChannelBody,
  deleteChannel,
  listChannels,
  makeSandboxDefault,
  redactedCredentials,
  updateChannel,
  updateChannelBody,
} from '../../core/providers/channels.js';
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
  enabled: z.boolean().describe('A disabled channel accepts no webhooks (404 CHANNEL_DISABLED) and sends nothing'),
  template: z.object({ name: z.string(), language: z.string() }).nullable(),
  credentials: z.record(z.string(), z.string()).describe('Identifiers shown, secrets "[redacted]"'),
  created_at: z.string(),
});

const channelParams = tenantParams.extend({ channel_id: z.uuid('must be a channel id (UUID)') });

export const channelRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const view = (c: Channel): z.infer<typeof channelView> => ({
      id: c.id,
      provider: c.provider,
      display_phone_number: c.displayPhoneNumber,
      routing_key: c.routingKey,
      api_base_url: c.apiBaseUrl,
      rate_per_second: c.ratePerSecond,
      team: c.team,
      is_default: c.isDefault,
      enabled: c.enabled,
      template: c.reopenTemplate ?? null,
      credentials: redactedCredentials(deps.keyring, c),
      created_at: c.createdAt.toISOString(),
    });

    app.post(
      '/routes/tenants/:tenant_id/channels',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Register a WhatsApp number with its provider and credentials (encrypted at rest)',
          description:
            "Inbound webhooks are routed by the provider's identifier (Meta phone_number_id, Twilio `To`, the Infobip channel URL). " +
            'A real (non-sandbox) channel registered while the sandbox is the default becomes the default for replies; ' +
            'POST /routes/tenants/{tenant_id}/channels/sandbox/default makes the sandbox the default again.',
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
      async (request) => ({ channels: (await listChannels(deps.db, request.tenant.id)).map(view) }),
    );

    app.patch(
      '/routes/tenants/:tenant_id/channels/:channel_id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Change a channel: enable or disable it, make it the default, or set its team, rate, number shown or template',
          description:
            'Fields not sent keep their value. The default channel is always enabled: disabling it answers 409 CHANNEL_IS_DEFAULT ' +
            '(make another channel the default first), and a disabled channel becomes the default only with "enabled": true in the same request. ' +
            'Conversations keep the channel they started on.',
          tags: ['channels'],
          security: bearer,
          params: channelParams,
          body: updateChannelBody,
          response: { 200: channelView, 409: errorSchema, ...errorResponses },
        },
      },
      async (request) => view(await updateChannel(deps.db, request.tenant.id, request.params.channel_id, request.body)),
    );

    app.delete(
      '/routes/tenants/:tenant_id/channels/:channel_id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Delete a channel: its webhooks stop, its credentials are erased, its conversations stay readable',
          description:
            'The default channel cannot be deleted (409 CHANNEL_IS_DEFAULT). A channel with open conversations answers 409 CHANNEL_IN_USE ' +
            'unless ?force=true; replies in those conversations then fail with the code channel_disabled. ' +
            'Once deleted, the number can be registered again.',
          tags: ['channels'],
          security: bearer,
          params: channelParams,
          querystring: z.object({
            force: z.enum(['true', 'false']).default('false').describe('"true" deletes even while conversations on this channel are open'),
          }),
          response: { 204: z.null(), 409: errorSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        await deleteChannel(deps.db, request.tenant.id, request.params.channel_id, { force: request.query.force === 'true' });
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/channels/sandbox/default',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Make the sandbox the default channel again (replies become readable over the API)',
          description:
            "Enables the tenant's sandbox channel (creating one if it was deleted) and makes it the default. Other channels stay " +
            'registered and keep receiving their webhooks; conversations keep the channel they started on.',
          tags: ['channels'],
          security: bearer,
          params: tenantParams,
          response: { 200: channelView, ...errorResponses },
        },
      },
      async (request) => view(await makeSandboxDefault(deps.db, request.tenant.id)),
    );
  };
