import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listContacts, upsertContacts } from '../../core/pulse/contacts.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, tenantParams } from '../schemas.js';

export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_:.-]{0,63}$/;
export const tag = z.string().regex(TAG_PATTERN, 'must be a tag: letters, digits, "_", ":", ".", "-", at most 64 characters');

const contactInput = z.object({
  phone: e164,
  name: z.string().trim().min(1).max(200).optional(),
  tags: z.array(tag).max(50).optional(),
  attributes: z.record(z.string().max(64), z.unknown()).optional(),
  opted_in: z.boolean(),
  consent_at: z.iso
    .datetime({ offset: true, message: 'must be an ISO-8601 date-time' })
    .optional()
    .describe('when consent was given or withdrawn (default: now)'),
  consent_source: z.string().trim().min(1).max(100).optional().describe('where consent was captured, e.g. "web_form" (default: "api")'),
});

const contactView = z.object({
  id: z.string(),
  phone: z.string(),
  name: z.string().nullable(),
  tags: z.array(z.string()),
  attributes: z.record(z.string(), z.unknown()),
  opted_in: z.boolean().nullable(),
  consent_at: z.string().nullable(),
  consent_source: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const contactRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.put(
      '/routes/tenants/:tenant_id/contacts',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Upsert contacts in bulk (keyed by phone number)',
          description:
            'Phone numbers, names and attributes are stored encrypted; the phone is found again through a keyed hash. ' +
            'Fields left out keep their stored value. Consent time and source change only when consent changes. ' +
            'A customer who opted out by replying STOP stays opted out until they reply START.',
          tags: ['contacts'],
          security: bearer,
          params: tenantParams,
          body: z.object({ contacts: z.array(contactInput).min(1, 'must hold at least one contact').max(1000) }),
          response: { 200: z.object({ upserted: z.number() }), ...errorResponses },
        },
      },
      async (request) => {
        return { upserted: await upsertContacts(deps.db, deps.keyring, request.tenant.id, request.body.contacts) };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/contacts',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'List contacts, decrypted, in pages; filter by tag, consent or exact phone number',
          tags: ['contacts'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({
            tag: tag.optional(),
            opted_in: z.enum(['true', 'false']).optional().describe('"false" also lists contacts with no consent recorded'),
            // An unencoded "+" in a query string arrives as a space: accept `?phone=+1555…` as meant.
            phone: z.preprocess((v) => (typeof v === 'string' ? v.replace(/^ (?=\d)/, '+') : v), e164.optional()),
            cursor: z.uuid('must be a next_cursor from a previous page').optional(),
            limit: z.coerce.number().int().min(1).max(500).default(100),
          }),
          response: { 200: z.object({ contacts: z.array(contactView), next_cursor: z.string().nullable() }), ...errorResponses },
        },
      },
      async (request) => {
        const q = request.query;
        return listContacts(deps.db, deps.keyring, request.params.tenant_id, {
          tag: q.tag,
          opted_in: q.opted_in === undefined ? undefined : q.opted_in === 'true',
          phone: q.phone,
          cursor: q.cursor,
          limit: q.limit,
        });
      },
    );
  };
