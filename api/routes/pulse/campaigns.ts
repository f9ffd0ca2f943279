import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PulseCampaign } from '../../../core/db/schema.js';
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
} from '../../../core/pulse/campaigns.js';
import { cronProblem, isKnownTimeZone } from '../../../core/pulse/cron.js';
import type { ApiDeps } from '../../deps.js';
import { bearer, errorResponses, errorSchema, tenantParams } from '../../schemas.js';
import { tag } from '../contacts.js';
import { campaignParams, campaignsPath, message, tags } from './schemas.js';

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
const audience = z
  .object({
    tags: z.array(tag).max(50).optional().describe('opted-in contacts carrying any of these tags; all opted-in contacts when empty'),
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

/** Campaigns: one Temporal Schedule each, and what can be done to it. */
export const campaignRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const scheduler: PulseScheduler = { temporal: deps.temporal, db: deps.db, taskQueue: deps.config.TEMPORAL_TASK_QUEUE };

    app.post(
      campaignsPath,
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
        const c = await createCampaign(scheduler, request.tenant.id, request.body);
        return reply.status(201).send({ id: c.id, schedule_id: c.scheduleId });
      },
    );

    app.get(
      campaignsPath,
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
      `${campaignsPath}/:id`,
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
      `${campaignsPath}/:id`,
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
      `${campaignsPath}/:id`,
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
        `${campaignsPath}/:id/${action}`,
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
      `${campaignsPath}/:id/trigger`,
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
  };
