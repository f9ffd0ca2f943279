import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, desc, eq } from 'drizzle-orm';
import { knowledgeDocuments, type KnowledgeDocument } from '../../core/db/schema.js';
import { AppError, badRequest, notFound } from '../../core/platform/errors.js';
import { createUploadDocument, documentMime, DOCUMENT_TYPES, type DocumentMime } from '../../core/knowledge/documents.js';
import { startKnowledgeIngest } from '../../core/knowledge/start-ingest.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantParams } from '../schemas.js';

const textTypes = ['text/plain', 'text/markdown', 'text/html'] as const;

const jsonDocument = z
  .object({
    title: z.string().trim().min(1).max(500),
    content: z.string().trim().min(1),
    content_type: z.enum(textTypes).default('text/plain').describe('how to read `content`'),
  })
  .strict();

const documentView = z.object({
  id: z.string(),
  kind: z.enum(['upload', 'entry']),
  title: z.string(),
  content_type: z.string(),
  status: z.enum(['queued', 'chunking', 'embedding', 'ready', 'failed']),
  chunks_total: z.number(),
  chunks_embedded: z.number(),
  progress: z.number().describe('0..1: chunks embedded of chunks made (1 when ready)'),
  error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

const documentParams = tenantParams.extend({ document_id: z.uuid('must be a document id (UUID)') });

function view(d: KnowledgeDocument): z.infer<typeof documentView> {
  const progress = d.status === 'ready' ? 1 : d.chunksTotal > 0 ? d.chunksEmbedded / d.chunksTotal : 0;
  return {
    id: d.id,
    kind: d.kind,
    title: d.title,
    content_type: d.mime,
    status: d.status,
    chunks_total: d.chunksTotal,
    chunks_embedded: d.chunksEmbedded,
    progress: Number(progress.toFixed(4)),
    error: d.error,
    created_at: d.createdAt.toISOString(),
    updated_at: d.updatedAt.toISOString(),
  };
}

export const knowledgeDocumentRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const maxBytes = deps.config.KNOWLEDGE_UPLOAD_MAX_BYTES;
    // Registered inside this plugin only: multipart parsing applies to these routes alone.
    await app.register(multipart, { limits: { fileSize: maxBytes, files: 1, fields: 5, fieldSize: 1000 } });

    app.post(
      '/routes/tenants/:tenant_id/knowledge/documents',
      {
        config: { auth: 'admin' },
        bodyLimit: maxBytes,
        schema: {
          summary: 'Add a knowledge document: JSON { title, content } or a multipart file (text, Markdown, HTML, PDF)',
          description:
            'The JSON body is shown below. Or send multipart/form-data: one file part (its type from its Content-Type or file name: ' +
            '.txt .md .html .pdf) and an optional `title` field. ' +
            'Ingestion (extract, chunk, embed) runs as a Temporal workflow; follow it with GET …/documents/{id}.',
          tags: ['knowledge'],
          security: bearer,
          params: tenantParams,
          body: jsonDocument.nullish(),
          response: { 202: z.object({ id: z.string() }), 413: errorSchema, 415: errorSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        const tenant_id = request.tenant.id;
        let doc: { title: string; mime: DocumentMime; raw: Buffer };
        if (request.isMultipart()) {
          const file = await request.file();
          if (!file) throw badRequest('VALIDATION_FAILED', 'body.file: a multipart file part is required');
          const mime = documentMime(file.mimetype, file.filename);
          if (!mime) {
            throw new AppError(
              415,
              'UNSUPPORTED_DOCUMENT_TYPE',
              `body.file: "${file.filename}" is not ${Object.values(DOCUMENT_TYPES).join(', ')}`,
            );
          }
          let raw: Buffer;
          try {
            raw = await file.toBuffer();
          } catch {
            throw new AppError(413, 'BODY_TOO_LARGE', `body.file: larger than ${maxBytes} bytes`);
          }
          if (raw.length === 0) throw badRequest('VALIDATION_FAILED', 'body.file: the file is empty');
          const titleField = file.fields.title;
          const title = titleField && 'value' in titleField && typeof titleField.value === 'string' ? titleField.value.trim() : '';
          doc = { title: (title || file.filename || 'document').slice(0, 500), mime, raw };
        } else {
          if (!request.body) throw badRequest('VALIDATION_FAILED', 'body: expected { "title", "content" } or a multipart file');
          doc = { title: request.body.title, mime: request.body.content_type, raw: Buffer.from(request.body.content, 'utf8') };
        }
        const id = await createUploadDocument(deps.db, tenant_id, doc);
        await startKnowledgeIngest(deps.temporal, deps.config.TEMPORAL_TASK_QUEUE, { tenantId: tenant_id, documentId: id });
        return reply.status(202).send({ id });
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/knowledge/documents',
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's knowledge documents (uploads and entries), newest first",
          tags: ['knowledge'],
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ documents: z.array(documentView) }), ...errorResponses },
        },
      },
      async (request) => {
        const rows = await deps.db
          .select()
          .from(knowledgeDocuments)
          .where(eq(knowledgeDocuments.tenantId, request.params.tenant_id))
          .orderBy(desc(knowledgeDocuments.createdAt))
          .limit(1000);
        return { documents: rows.map(view) };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/knowledge/documents/:document_id',
      {
        config: { auth: 'read' },
        schema: {
          summary: "A knowledge document's ingestion status and progress",
          tags: ['knowledge'],
          security: bearer,
          params: documentParams,
          response: { 200: documentView, ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, document_id } = request.params;
        const [row] = await deps.db
          .select()
          .from(knowledgeDocuments)
          .where(and(eq(knowledgeDocuments.id, document_id), eq(knowledgeDocuments.tenantId, tenant_id)));
        if (!row) throw notFound('DOCUMENT_NOT_FOUND', `document_id: no document "${document_id}"`);
        return view(row);
      },
    );

    app.delete(
      '/routes/tenants/:tenant_id/knowledge/documents/:document_id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Remove an uploaded document and its chunks',
          tags: ['knowledge'],
          security: bearer,
          params: documentParams,
          response: { 204: z.null(), ...errorResponses },
        },
      },
      async (request, reply) => {
        const { tenant_id, document_id } = request.params;
        const deleted = await deps.db
          .delete(knowledgeDocuments)
          .where(
            and(eq(knowledgeDocuments.id, document_id), eq(knowledgeDocuments.tenantId, tenant_id), eq(knowledgeDocuments.kind, 'upload')),
          )
          .returning({ id: knowledgeDocuments.id });
        if (!deleted.length)
          throw notFound(
            'DOCUMENT_NOT_FOUND',
            `document_id: no uploaded document "${document_id}" (entries change through PUT …/knowledge)`,
          );
        return reply.status(204).send(null);
      },
    );
  };
