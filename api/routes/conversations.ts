import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, asc, desc, eq, lt } from 'drizzle-orm';
import { contacts, conversations, messages } from '../../core/db/schema.js';
import { notFound } from '../../core/platform/errors.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, tenantParams } from '../schemas.js';

const conversationSummary = z.object({
  id: z.string(),
  status: z.string(),
  needs_human: z.boolean().describe('handed over to a person: the bot no longer replies'),
  workflow_id: z.string(),
  channel_id: z.string(),
  contact_id: z.string(),
  contact_phone: z.string(),
  last_inbound_at: z.string().nullable(),
  created_at: z.string(),
  team: z.string().nullable().describe('The team owning the conversation (from its channel)'),
});

const messageView = z.object({
  id: z.string(),
  direction: z.enum(['inbound', 'outbound']),
  text: z.string(),
  status: z.string(),
  in_reply_to: z.array(z.string()),
  reply_source: z.string().nullable(),
  source_chunk_ids: z.array(z.string()).describe('knowledge chunks the reply was grounded in'),
  created_at: z.string(),
  sent_at: z.string().nullable(),
  delivery_status: z
    .enum(['sent', 'delivered', 'read', 'failed', 'unknown'])
    .nullable()
    .describe('Outbound: latest provider status; `unknown` when the provider may have taken it and could not tell (never resent)'),
  delivery_error_code: z.string().nullable().describe('Outbound: provider error code (e.g. 131047), window_closed or outcome_unknown'),
  choice_id: z.string().nullable().describe('Inbound: id of the button or list row chosen (text is its title)'),
});

export const conversationRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const summarize = (c: typeof conversations.$inferSelect, phoneEnc: string) => ({
      id: c.id,
      status: c.status,
      needs_human: c.needsHuman,
      workflow_id: c.workflowId,
      channel_id: c.channelId,
      contact_id: c.contactId,
      contact_phone: deps.keyring.decrypt(phoneEnc, { tenantId: c.tenantId, column: contacts.phoneEnc }),
      last_inbound_at: c.lastInboundAt?.toISOString() ?? null,
      created_at: c.createdAt.toISOString(),
      team: c.team,
    });

    app.get(
      '/routes/tenants/:tenant_id/conversations',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Conversations, most recently active first (paginate with `before`)',
          tags: ['conversations'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({
            limit: z.coerce.number().int().min(1).max(200).default(50),
            before: z.iso.datetime({ offset: true }).optional(),
          }),
          response: { 200: z.object({ conversations: z.array(conversationSummary) }), ...errorResponses },
        },
      },
      async (request) => {
        const { limit, before } = request.query;
        const rows = await deps.db
          .select({ c: conversations, phoneEnc: contacts.phoneEnc })
          .from(conversations)
          .innerJoin(contacts, eq(contacts.id, conversations.contactId))
          .where(
            and(eq(conversations.tenantId, request.params.tenant_id), before ? lt(conversations.updatedAt, new Date(before)) : undefined),
          )
          .orderBy(desc(conversations.updatedAt))
          .limit(limit);
        return { conversations: rows.map((r) => summarize(r.c, r.phoneEnc)) };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/conversations/:conversation_id',
      {
        config: { auth: 'read' },
        schema: {
          summary: "A conversation's status and its messages in order, decrypted",
          tags: ['conversations'],
          security: bearer,
          params: tenantParams.extend({ conversation_id: z.uuid('must be a conversation id (UUID)') }),
          response: { 200: conversationSummary.extend({ messages: z.array(messageView) }), ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, conversation_id } = request.params;
        const [row] = await deps.db
          .select({ c: conversations, phoneEnc: contacts.phoneEnc })
          .from(conversations)
          .innerJoin(contacts, eq(contacts.id, conversations.contactId))
          .where(and(eq(conversations.tenantId, tenant_id), eq(conversations.id, conversation_id)));
        if (!row) throw notFound('CONVERSATION_NOT_FOUND', `conversation_id: no conversation "${conversation_id}"`);
        const rows = await deps.db
          .select()
          .from(messages)
          .where(and(eq(messages.tenantId, tenant_id), eq(messages.conversationId, conversation_id)))
          .orderBy(asc(messages.seq));
        return {
          ...summarize(row.c, row.phoneEnc),
          messages: rows.map((m) => ({
            id: m.id,
            direction: m.direction,
            text: deps.keyring.decrypt(m.bodyEnc, { tenantId: m.tenantId, column: messages.bodyEnc }),
            status: m.status,
            in_reply_to: m.inReplyTo ?? [],
            reply_source: m.replySource,
            source_chunk_ids: m.sourceChunkIds ?? [],
            created_at: m.createdAt.toISOString(),
            sent_at: m.sentAt?.toISOString() ?? null,
            delivery_status: (m.deliveryStatus as 'sent' | 'delivered' | 'read' | 'failed' | 'unknown' | null) ?? null,
            delivery_error_code: m.deliveryErrorCode,
            choice_id: m.choiceId,
          })),
        };
      },
    );
  };
