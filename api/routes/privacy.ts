import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { notFound } from '../../core/platform/errors.js';
import { recordConsent } from '../../core/privacy/consent.js';
import { findContactIdByPhone } from '../../core/privacy/contacts.js';
import { eraseContact } from '../../core/privacy/erasure.js';
import { exportContact } from '../../core/privacy/export.js';
import { setRetention } from '../../core/privacy/retention.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, tenantParams } from '../schemas.js';

const contactParams = tenantParams.extend({ contact_id: z.uuid('must be a contact id (UUID)') });

const count = (what: string) => z.number().describe(what);
const receipt = z.object({
  erased: z.object({
    contacts: count('The contact row'),
    conversations: count('Conversations'),
    messages: count('Inbound and outbound messages'),
    message_media: count('Media items received with their messages'),
    sandbox_messages: count('Sandbox sends to their number'),
    jobs: count('Legacy n8n jobs'),
    consent_events: count('Consent history'),
    campaign_sends: count('Campaign send records'),
    delivery_events: count('Status callbacks of messages sent to them'),
    remote_lookups: count("Lookups for the tenant's data worker"),
    data_access_logs: count('Lookup audit rows anonymised (kept for metrics without customer, workflow or error)'),
    ai_usage: count('AI token usage rows anonymised (kept for the budget without the conversation)'),
    ai_events: count('AI events of their conversations'),
    webhook_events: count('Outbound events naming them or their conversations, with their pending deliveries'),
    conversation_workflows: count('Conversation workflow runs whose history was deleted'),
    lookup_workflows: count('Standalone lookup workflow runs (nl-query, data_lookup) whose history was deleted'),
    media_workflows: count('Media download workflow runs whose history was deleted'),
    workflows: count('All workflow runs deleted (the three kinds above)'),
  }),
  at: z.string(),
});

const exported = z.object({
  contact: z.object({
    id: z.string(),
    phone: z.string(),
    name: z.string().nullable(),
    tags: z.array(z.string()),
    attributes: z.unknown(),
    opted_in: z.boolean().nullable(),
    consent_at: z.string().nullable(),
    consent_source: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  }),
  consent_history: z.array(z.object({ opted_in: z.boolean(), source: z.string(), at: z.string() })),
  conversations: z.array(
    z.object({
      id: z.string(),
      channel_id: z.string(),
      status: z.string(),
      created_at: z.string(),
      last_inbound_at: z.string().nullable(),
      messages: z.array(
        z.object({
          id: z.string(),
          direction: z.string(),
          text: z.string(),
          status: z.string(),
          created_at: z.string(),
          sent_at: z.string().nullable(),
        }),
      ),
    }),
  ),
  sandbox_messages: z.array(z.object({ id: z.string(), text: z.string(), sent_at: z.string() })),
  jobs: z.array(z.object({ id: z.string(), status: z.string(), payload: z.unknown(), created_at: z.string() })),
  campaign_sends: z.array(
    z.object({
      run_id: z.string(),
      status: z.string(),
      template_name: z.string().nullable(),
      created_at: z.string(),
      sent_at: z.string().nullable(),
    }),
  ),
  exported_at: z.string(),
});

const contactNotFound = (id: string) => notFound('CONTACT_NOT_FOUND', `contact_id: no contact "${id}"`);

/** GDPR/LGPD: erasure, export (portability), consent and retention. */
export const privacyRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const erasureDeps = { db: deps.db, keyring: deps.keyring, temporal: deps.temporal };

    app.delete(
      '/routes/tenants/:tenant_id/contacts/:contact_id',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Erase a contact: every row and every workflow history that names them; the receipt counts each kind',
          description:
            'Conversations, messages, media, jobs, sandbox sends, consent history, campaign sends, delivery status events and ' +
            "lookups for the tenant's data worker are deleted; lookup audit rows and AI token usage are anonymised; the " +
            'histories of their conversation, media download and standalone lookup workflows are deleted. Campaign run ' +
            'workflows stay: they hold only ids.',
          tags: ['privacy'],
          security: bearer,
          params: contactParams,
          response: { 200: receipt, ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, contact_id } = request.params;
        const result = await eraseContact(erasureDeps, tenant_id, contact_id);
        if (!result) throw contactNotFound(contact_id);
        return result;
      },
    );

    app.delete(
      '/routes/tenants/:tenant_id/contacts',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Erase the contact with this phone number (same receipt as erasure by id)',
          tags: ['privacy'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({ phone: e164 }),
          response: { 200: receipt, ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id } = request.params;
        const id = await findContactIdByPhone(deps.db, deps.keyring, tenant_id, request.query.phone);
        const result = id ? await eraseContact(erasureDeps, tenant_id, id) : undefined;
        if (!result) throw notFound('CONTACT_NOT_FOUND', 'phone: no contact with this number');
        return result;
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/contacts/:contact_id/export',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Everything held about a contact, decrypted (data portability); 404 once erased',
          tags: ['privacy'],
          security: bearer,
          params: contactParams,
          response: { 200: exported, ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, contact_id } = request.params;
        const result = await exportContact(deps.db, deps.keyring, tenant_id, contact_id);
        if (!result) throw contactNotFound(contact_id);
        return result;
      },
    );

    app.put(
      '/routes/tenants/:tenant_id/contacts/:contact_id/consent',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Record an opt-in or opt-out (revocation applies to the next send)',
          tags: ['privacy'],
          security: bearer,
          params: contactParams,
          body: z.object({ opted_in: z.boolean(), source: z.string().trim().min(1).max(100) }).strict(),
          response: {
            200: z.object({ id: z.string(), opted_in: z.boolean(), consent_source: z.string(), consent_at: z.string() }),
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { tenant_id, contact_id } = request.params;
        const at = new Date();
        const ok = await recordConsent(deps.db, tenant_id, contact_id, { optedIn: request.body.opted_in, source: request.body.source, at });
        if (!ok) throw contactNotFound(contact_id);
        return { id: contact_id, opted_in: request.body.opted_in, consent_source: request.body.source, consent_at: at.toISOString() };
      },
    );

    app.put(
      '/routes/tenants/:tenant_id/retention',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Keep messages and closed conversations this many days (null keeps them)',
          tags: ['privacy'],
          security: bearer,
          params: tenantParams,
          body: z.object({ days: z.number().int().min(1).max(36_500).nullable() }).strict(),
          response: { 200: z.object({ tenant_id: z.string(), days: z.number().nullable() }), ...errorResponses },
        },
      },
      async (request) => {
        const tenant_id = request.tenant.id;
        await setRetention(deps.db, tenant_id, request.body.days);
        return { tenant_id, days: request.body.days };
      },
    );
  };
