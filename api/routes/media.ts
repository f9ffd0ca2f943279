import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, asc, eq } from 'drizzle-orm';
import { messageMedia, messages } from '../../core/db/schema.js';
import { notFound } from '../../core/platform/errors.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, tenantParams } from '../schemas.js';

const mediaView = z.object({
  id: z.string(),
  kind: z.string(),
  mime_type: z.string().nullable(),
  filename: z.string().nullable(),
  status: z.enum(['pending', 'downloaded', 'failed']),
  size_bytes: z.number().nullable(),
  downloaded_at: z.string().nullable(),
});

export const mediaRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/routes/tenants/:tenant_id/messages/:message_id/media',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Media received with an inbound message: metadata and download status',
          tags: ['conversations'],
          security: bearer,
          params: tenantParams.extend({ message_id: z.uuid('must be a message id (UUID)') }),
          response: { 200: z.object({ media: z.array(mediaView) }), ...errorResponses },
        },
      },
      async (request) => {
        const [message] = await deps.db
          .select({ id: messages.id })
          .from(messages)
          .where(and(eq(messages.tenantId, request.params.tenant_id), eq(messages.id, request.params.message_id)));
        if (!message) throw notFound('MESSAGE_NOT_FOUND', `message_id: no message "${request.params.message_id}"`);
        const rows = await deps.db
          .select()
          .from(messageMedia)
          .where(and(eq(messageMedia.tenantId, request.params.tenant_id), eq(messageMedia.messageId, request.params.message_id)))
          .orderBy(asc(messageMedia.position));
        return {
          media: rows.map((m) => ({
            id: m.id,
            kind: m.kind,
            mime_type: m.mimeType,
            filename: m.filenameEnc
              ? deps.keyring.decrypt(m.filenameEnc, { tenantId: m.tenantId, column: messageMedia.filenameEnc })
              : null,
            status: m.status,
            size_bytes: m.sizeBytes,
            downloaded_at: m.downloadedAt?.toISOString() ?? null,
          })),
        };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/media/:media_id/content',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'The downloaded bytes of a media item (decrypted), with its MIME type',
          tags: ['conversations'],
          security: bearer,
          params: tenantParams.extend({ media_id: z.uuid('must be a media id (UUID)') }),
          response: { ...errorResponses },
        },
      },
      async (request, reply) => {
        const [m] = await deps.db
          .select()
          .from(messageMedia)
          .where(and(eq(messageMedia.tenantId, request.params.tenant_id), eq(messageMedia.id, request.params.media_id)));
        if (!m) throw notFound('MEDIA_NOT_FOUND', `media_id: no media "${request.params.media_id}"`);
        if (m.status !== 'downloaded' || !m.contentEnc || !m.contentKey)
          throw notFound('MEDIA_NOT_DOWNLOADED', `media_id: media is ${m.status}`);
        return reply
          .type(m.mimeType ?? 'application/octet-stream')
          .send(
            deps.keyring.decryptColumnBytes(m.contentKey, m.contentEnc, { tenantId: m.tenantId, column: messageMedia.contentEnc }) as never,
          );
      },
    );
  };
