import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, eq } from 'drizzle-orm';
import { contacts } from '../../../core/db/schema.js';
import { badRequest, notFound } from '../../../core/platform/errors.js';
import { findCampaign } from '../../../core/pulse/campaigns.js';
import { pickContent } from '../../../core/pulse/content.js';
import { decryptAttributes } from '../../../core/pulse/contacts.js';
import { LlmError } from '../../../core/ai/llm.js';
import { loadAiProfile } from '../../../core/ai/profile.js';
import { usableProfile, writePulseContentWithLlm } from '../../../core/ai/seed.js';
import type { ApiDeps } from '../../deps.js';
import { assertTenantAccess } from '../../tenant.js';
import { bearer, e164, errorResponses, tenantId } from '../../schemas.js';
import { tag } from '../contacts.js';
import { message, tags, template } from './schemas.js';

/** The seed's /routes/context/pulse-content: one contact's personalised campaign message. */
export const contentRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/routes/context/pulse-content',
      {
        config: { auth: 'messages' },
        schema: {
          summary:
            'Pick and personalise Relational Pulse content for one contact (LLM-written when the tenant has an AI profile, else rules)',
          description:
            'Content comes from a campaign (campaign_id) or an inline template with optional tag variants; the contact from ' +
            'contact_id, phone, or inline details. The first variant sharing a tag with the contact wins; variables fill in (source "rules"). ' +
            'With an AI profile and budget left the LLM writes the message from that template and the contact (phone numbers and emails ' +
            'masked; source "llm"); if the LLM fails, the rules answer.',
          tags,
          security: bearer,
          body: z
            .object({
              tenant_id: tenantId,
              campaign_id: z.uuid('must be a campaign id (UUID)').optional(),
              template: template.optional(),
              variants: message.shape.variants,
              contact_id: z.uuid('must be a contact id (UUID)').optional(),
              phone: e164.optional(),
              contact: z
                .object({
                  name: z.string().max(200).optional(),
                  tags: z.array(tag).max(50).optional(),
                  attributes: z.record(z.string(), z.unknown()).optional(),
                })
                .strict()
                .optional(),
            })
            .strict()
            .superRefine((b, ctx) => {
              if (!b.campaign_id && !b.template)
                ctx.addIssue({ code: 'custom', path: ['template'], message: 'give a template or a campaign_id' });
              if (!b.contact_id && !b.phone && !b.contact)
                ctx.addIssue({ code: 'custom', path: ['contact'], message: 'give a contact, contact_id or phone' });
            }),
          response: {
            200: z.object({
              content: z.string(),
              variant: z.string(),
              contact_id: z.string().nullable(),
              source: z.enum(['rules', 'llm']),
            }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const b = request.body;
        assertTenantAccess(request, b.tenant_id);
        const msg = b.campaign_id
          ? (await findCampaign(deps.db, b.tenant_id, b.campaign_id)).message
          : { template: b.template!, variants: b.variants };
        let contactId: string | null = null;
        let who = { name: b.contact?.name ?? null, tags: b.contact?.tags ?? [], attributes: b.contact?.attributes ?? {} };
        if (b.contact_id || b.phone) {
          const [row] = await deps.db
            .select()
            .from(contacts)
            .where(
              and(
                eq(contacts.tenantId, b.tenant_id),
                b.contact_id ? eq(contacts.id, b.contact_id) : eq(contacts.phoneHash, deps.keyring.blindIndex(b.phone!)),
              ),
            );
          if (!row)
            throw notFound(
              'CONTACT_NOT_FOUND',
              b.contact_id ? `contact_id: no contact "${b.contact_id}"` : 'phone: no contact with this number',
            );
          contactId = row.id;
          who = {
            name: row.nameEnc ? deps.keyring.decrypt(row.nameEnc, { tenantId: row.tenantId, column: contacts.nameEnc }) : null,
            tags: row.tags,
            attributes: decryptAttributes(deps.keyring, row.tenantId, row.attributesEnc),
          };
        }
        if (!msg.template) throw badRequest('VALIDATION_FAILED', 'body.template: must not be empty');
        const picked = pickContent(msg, who);
        const profile = await usableProfile(deps.db, await loadAiProfile(deps.db, deps.keyring, b.tenant_id));
        if (profile) {
          const index = picked.variant.startsWith('variant:') ? Number(picked.variant.slice('variant:'.length)) : -1;
          const chosen = index >= 0 ? msg.variants![index].template : msg.template;
          try {
            const text = await writePulseContentWithLlm({ db: deps.db, timeoutMs: deps.config.AI_REQUEST_TIMEOUT_MS }, profile, {
              template: chosen,
              draft: picked.text,
              contact: who,
            });
            if (text) return { content: text, variant: picked.variant, contact_id: contactId, source: 'llm' as const };
          } catch (err) {
            if (!(err instanceof LlmError)) throw err;
            request.log.warn({ tenant_id: b.tenant_id, status: err.status ?? null }, 'pulse-content: LLM unavailable, answering by rules');
          }
        }
        return { content: picked.text, variant: picked.variant, contact_id: contactId, source: 'rules' as const };
      },
    );
  };
