import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { acceptInbound } from '../../core/messaging/accept-inbound.js';
import { findTenant } from '../../core/tenants/tenants.js';
import { notFound } from '../../core/platform/errors.js';
import { assertTenantAccess } from '../tenant.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, tenantId } from '../schemas.js';

/** WhatsApp's limit for a text message. */
export const MAX_TEXT = 4096;

export const inboundBody = z.object({
  from: e164,
  message: z.string().min(1, 'must not be empty').max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`),
  tenant_id: tenantId,
  timestamp: z.iso.datetime({ offset: true, message: 'must be an ISO-8601 date-time, e.g. 2025-09-10T10:30:00Z' }),
  message_id: z.string().min(1).max(256).optional(),
});

const accepted = z.object({ message_id: z.string(), conversation_id: z.string(), duplicate: z.boolean() });

export const inboundRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/webhook/inbound',
      {
        config: { auth: 'messages' },
        schema: {
          summary: 'Accept an inbound WhatsApp message (the legacy WhatsApp Engine payload)',
          description:
            'Answers 202 once the message is durable in PostgreSQL; the conversation workflow replies asynchronously. ' +
            'A re-delivery of the same message answers 200 with duplicate=true and never causes a second reply.',
          tags: ['messages'],
          security: bearer,
          body: inboundBody,
          response: { 200: accepted, 202: accepted, ...errorResponses },
        },
      },
      async (request, reply) => {
        const body = request.body;
        assertTenantAccess(request, body.tenant_id);
        if (request.principal?.kind === 'admin' && !(await findTenant(deps.db, body.tenant_id))) {
          throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${body.tenant_id}"`);
        }
        const result = await acceptInbound(deps.db, deps.keyring, {
          tenantId: body.tenant_id,
          from: body.from,
          text: body.message,
          timestamp: body.timestamp,
          providerMessageId: body.message_id,
        });
        if (result.duplicate)
          return reply.status(200).send({ message_id: result.messageId, conversation_id: result.conversationId, duplicate: true });
        deps.relay.kick(result.conversationId);
        return reply.status(202).send({ message_id: result.messageId, conversation_id: result.conversationId, duplicate: false });
      },
    );
  };
