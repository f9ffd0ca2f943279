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

const receipt = z.object({
  erased: z.object({
    contacts: z.number(),
    conversations: z.number(),
    messages: z.number(),
    sandbox_messages: z.number(),
    jobs: z.number(),
    consent_events: z.number(),
    campaign_sends: z.number(),
    workflows: z.number(),
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
          summary: "Erase a contact: their messages, jobs, sandbox sends, consent history and conversation workflows' histories",
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
