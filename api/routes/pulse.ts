import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { and, eq, sql } from 'drizzle-orm';
import { contacts, tenants, type PulseCampaign } from '../../core/db/schema.js';
import { badRequest, notFound } from '../../core/platform/errors.js';
import {
  createCampaign,
  deleteCampaign,
  findCampaign,
  listCampaigns,
  OVERLAP_POLICIES,
  scheduleState,
  setPaused,
  triggerCampaign,
  updateCampaign,
  type PulseScheduler,
} from '../../core/pulse/campaigns.js';
import { pickContent } from '../../core/pulse/content.js';
import { LlmError } from '../../core/ai/llm.js';
import { loadAiProfile } from '../../core/ai/profile.js';
import { usableProfile, writePulseContentWithLlm } from '../../core/ai/seed.js';
import {
  decryptAttributes,
  DEFAULT_OPT_IN_CONFIRMATION,
  DEFAULT_OPT_OUT_CONFIRMATION,
  DEFAULT_OPT_OUT_KEYWORDS,
  type PulseSettings,
} from '../../core/pulse/contacts.js';
import { cronProblem, isKnownTimeZone } from '../../core/pulse/cron.js';
import { listRuns } from '../../core/pulse/runs.js';
import { findTenant } from '../../core/tenants/tenants.js';
import { assertTenantAccess } from '../auth.js';
import type { ApiDeps } from '../deps.js';
import { bearer, e164, errorResponses, errorSchema, tenantId, tenantParams } from '../schemas.js';
import { tag } from './contacts.js';

const DEFAULT_RATE = 80;

const cron = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200)
  .superRefine((value, ctx) => {
    const problem = cronProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: `invalid cron expression: ${problem}` });
  })
  .describe('five-field cron (minute hour day-of-month month day-of-week) or @daily/@weekly/…, e.g. "0 9 * * MON"');
const timezone = z
  .string()
  .trim()
  .refine(isKnownTimeZone, 'must be an IANA time zone, e.g. "Africa/Johannesburg" or "UTC"')
  .describe('IANA time zone the cron is read in');
const template = z.string().trim().min(1, 'must not be empty').max(4096);
const audience = z
  .object({
    tags: z.array(tag).max(50).optional().describe('opted-in contacts carrying any of these tags; all opted-in contacts when empty'),
  })
  .strict();
const message = z
  .object({
    template: template.describe('message text with {{name}}, {{first_name}} or {{<attribute>}} variables'),
    window_template: z
      .string()
      .regex(/^[a-z0-9_]{1,512}$/, 'must be an approved WhatsApp template name: lowercase letters, digits and "_"')
      .optional()
      .describe('approved template sent to contacts outside the 24-hour window; without it they are skipped'),
    variants: z
      .array(z.object({ tags: z.array(tag).min(1, 'must name at least one tag'), template }).strict())
      .max(20)
      .optional()
      .describe('rule-based personalisation: the first variant sharing a tag with the contact replaces the template'),
  })
  .strict();
const campaignFields = {
  name: z.string().trim().min(1).max(200),
  cron,
  timezone,
  audience,
  message,
  rate_per_second: z.number().int().min(1).max(1000).describe('messages per second (default 80, the Cloud API default per number)'),
  overlap: z.enum(OVERLAP_POLICIES).describe('what a run due while another runs does (default "skip")'),
};
const createBody = z
  .object({
    ...campaignFields,
    audience: audience.default({}),
    rate_per_second: campaignFields.rate_per_second.default(DEFAULT_RATE),
    overlap: campaignFields.overlap.default('skip'),
  })
  .strict();
const updateBody = z.object(campaignFields).partial().strict();

const campaignParams = tenantParams.extend({ id: z.uuid('must be a campaign id (UUID)') });
const campaignView = z.object({
  id: z.string(),
  schedule_id: z.string(),
  name: z.string(),
  cron: z.string(),
  timezone: z.string(),
  audience,
  message,
  rate_per_second: z.number(),
  overlap: z.string(),
  paused: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});
const scheduleView = z.object({ paused: z.boolean(), next_runs: z.array(z.string()), running: z.array(z.string()) });
const runView = z.object({
  run_id: z.string(),
  status: z.string(),
  targeted: z.number(),
  sent: z.number(),
  failed: z.number(),
  skipped_opted_out: z.number(),
  skipped_window: z.number(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
});
const settingsBody = z
  .object({
    opt_out_keywords: z
      .array(z.string().trim().min(1).max(40))
      .max(20)
      .describe('extra keywords that unsubscribe (STOP and UNSUBSCRIBE always do)'),
    opt_out_confirmation: z.string().trim().min(1).max(1024),
    opt_in_confirmation: z.string().trim().min(1).max(1024),
  })
  .partial()
  .strict();

function view(c: PulseCampaign) {
  return {
    id: c.id,
    schedule_id: c.scheduleId,
    name: c.name,
    cron: c.cron,
    timezone: c.timezone,
    audience: c.audience,
    message: c.message,
    rate_per_second: c.ratePerSecond,
    overlap: c.overlap,
    paused: c.paused,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

export const pulseRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const scheduler: PulseScheduler = { temporal: deps.temporal, db: deps.db, taskQueue: deps.config.TEMPORAL_TASK_QUEUE };
    const base = '/routes/tenants/:tenant_id/pulse/campaigns';
    const tags = ['pulse'];
    const requireTenant = async (id: string) => {
      if (!(await findTenant(deps.db, id))) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${id}"`);
    };

    app.post(
      base,
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Create a campaign: one Temporal Schedule (cron + time zone) that runs PulseCampaignWorkflow',
          tags,
          security: bearer,
          params: tenantParams,
          body: createBody,
          response: { 201: z.object({ id: z.string(), schedule_id: z.string() }), ...errorResponses },
        },
      },
      async (request, reply) => {
        await requireTenant(request.params.tenant_id);
        const c = await createCampaign(scheduler, request.params.tenant_id, request.body);
        return reply.status(201).send({ id: c.id, schedule_id: c.scheduleId });
      },
    );

    app.get(
      base,
      {
        config: { auth: 'read' },
        schema: {
          summary: "The tenant's campaigns",
          tags,
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ campaigns: z.array(campaignView) }), ...errorResponses },
        },
      },
      async (request) => ({ campaigns: (await listCampaigns(deps.db, request.params.tenant_id)).map(view) }),
    );

    app.get(
      `${base}/:id`,
      {
        config: { auth: 'read' },
        schema: {
          summary: 'A campaign and its Schedule as Temporal describes it (paused, next runs, running)',
          tags,
          security: bearer,
          params: campaignParams,
          response: { 200: campaignView.extend({ schedule: scheduleView }), ...errorResponses },
        },
      },
      async (request) => {
        const c = await findCampaign(deps.db, request.params.tenant_id, request.params.id);
        return { ...view(c), schedule: await scheduleState(scheduler, c) };
      },
    );

    app.patch(
      `${base}/:id`,
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Change a campaign; cron, time zone and overlap policy update its Schedule, the rest applies from the next run',
          tags,
          security: bearer,
          params: campaignParams,
          body: updateBody,
          response: { 200: campaignView, ...errorResponses },
        },
      },
      async (request) => view(await updateCampaign(scheduler, request.params.tenant_id, request.params.id, request.body)),
    );

    app.delete(
      `${base}/:id`,
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Delete a campaign, its Schedule and its run records; a run in progress is cancelled',
          tags,
          security: bearer,
          params: campaignParams,
          response: { 204: z.null(), ...errorResponses },
        },
      },
      async (request, reply) => {
        await deleteCampaign(scheduler, request.params.tenant_id, request.params.id);
        return reply.status(204).send(null);
      },
    );

    for (const [action, paused] of [
      ['pause', true],
      ['resume', false],
    ] as const) {
      app.post(
        `${base}/:id/${action}`,
        {
          config: { auth: 'admin' },
          schema: {
            summary: paused
              ? 'Pause the Schedule and any run in progress (it stops between two sends)'
              : 'Resume the Schedule and a paused run in progress',
            tags,
            security: bearer,
            params: campaignParams,
            response: { 200: z.object({ id: z.string(), paused: z.boolean() }), ...errorResponses },
          },
        },
        async (request) => {
          await setPaused(scheduler, request.params.tenant_id, request.params.id, paused);
          return { id: request.params.id, paused };
        },
      );
    }

    app.post(
      `${base}/:id/trigger`,
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Run the campaign now through its Schedule; answers with the run id',
          description:
            'Under the "skip" overlap policy a run already in progress makes this 409 RUN_IN_PROGRESS; a paused campaign answers 409 CAMPAIGN_PAUSED.',
          tags,
          security: bearer,
          params: campaignParams,
          response: { 202: z.object({ run_id: z.string() }), 409: errorSchema, 503: errorSchema, ...errorResponses },
        },
      },
      async (request, reply) =>
        reply.status(202).send({ run_id: await triggerCampaign(scheduler, request.params.tenant_id, request.params.id) }),
    );

    app.get(
      `${base}/:id/runs`,
      {
        config: { auth: 'read' },
        schema: {
          summary: "A campaign's runs, newest first, with per-run counts",
          tags,
          security: bearer,
          params: campaignParams,
          querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }),
          response: { 200: z.object({ runs: z.array(runView) }), ...errorResponses },
        },
      },
      async (request) => {
        await findCampaign(deps.db, request.params.tenant_id, request.params.id);
        return { runs: await listRuns(deps.db, request.params.tenant_id, request.params.id, request.query.limit) };
      },
    );

    const settingsView = z.object({
      opt_out_keywords: z.array(z.string()),
      opt_out_confirmation: z.string(),
      opt_in_confirmation: z.string(),
    });
    const settingsOf = (s: PulseSettings) => ({
      opt_out_keywords: [...DEFAULT_OPT_OUT_KEYWORDS, ...(s.opt_out_keywords ?? [])],
      opt_out_confirmation: s.opt_out_confirmation ?? DEFAULT_OPT_OUT_CONFIRMATION,
      opt_in_confirmation: s.opt_in_confirmation ?? DEFAULT_OPT_IN_CONFIRMATION,
    });
    app.put(
      '/routes/tenants/:tenant_id/pulse/settings',
      {
        config: { auth: 'admin' },
        schema: {
          summary: 'Opt-out keywords and the confirmations sent when a customer opts out or back in',
          tags,
          security: bearer,
          params: tenantParams,
          body: settingsBody,
          response: { 200: settingsView, ...errorResponses },
        },
      },
      async (request) => {
        const patch = { ...request.body, opt_out_keywords: request.body.opt_out_keywords?.map((k) => k.toUpperCase()) };
        const [row] = await deps.db
          .update(tenants)
          .set({ settings: sql`${tenants.settings} || ${JSON.stringify(patch)}::jsonb`, updatedAt: sql`now()` })
          .where(eq(tenants.id, request.params.tenant_id))
          .returning({ settings: tenants.settings });
        if (!row) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        return settingsOf(row.settings as PulseSettings);
      },
    );
    app.get(
      '/routes/tenants/:tenant_id/pulse/settings',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Opt-out settings',
          tags,
          security: bearer,
          params: tenantParams,
          response: { 200: settingsView, ...errorResponses },
        },
      },
      async (request) => {
        const tenant = await findTenant(deps.db, request.params.tenant_id);
        if (!tenant) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${request.params.tenant_id}"`);
        return settingsOf(tenant.settings as PulseSettings);
      },
    );

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
            name: row.nameEnc ? deps.keyring.decrypt(row.nameEnc) : null,
            tags: row.tags,
            attributes: decryptAttributes(deps.keyring, row.attributesEnc),
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
