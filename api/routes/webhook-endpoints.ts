import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EVENT_TYPES } from '../../core/events/emit.js';
import {
  createEndpoint,
  deleteEndpoint,
  endpointView,
  getEndpoint,
  listEndpoints,
  rotateSecret,
  updateEndpoint,
} from '../../core/events/endpoints.js';
import { listDeliveries, redeliver, replay } from '../../core/events/operations.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantParams } from '../schemas.js';

const eventType = z.enum(EVENT_TYPES);
const subscription = z.union([eventType, z.literal('*')]);
const events = z
  .array(subscription)
  .min(1, 'must name at least one event type (or "*")')
  .max(EVENT_TYPES.length + 1)
  .refine((s) => new Set(s).size === s.length, 'must not repeat an event type');

const endpoint = z.object({
  id: z.string(),
  url: z.string(),
  description: z.string().nullable(),
  events: z.array(subscription),
  include_message_text: z.boolean(),
  include_phone: z.boolean(),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable().describe('"gone" (the receiver answered 410), "failing_24h", or "disabled_by_tenant"'),
  failing_since: z.string().nullable(),
  previous_secret_expires_at: z.string().nullable().describe('during a rotation: until then the previous secret signs too'),
  created_at: z.string(),
  updated_at: z.string(),
});
const withSecret = endpoint.extend({ secret: z.string().describe('the signing secret (`whsec_…`), shown once') });

const endpointParams = tenantParams.extend({ id: z.uuid('must be a webhook endpoint id (UUID)') });
const fields = {
  url: z.string().trim().max(2048),
  events,
  description: z.string().trim().max(500).nullable().optional(),
  include_message_text: z.boolean().optional(),
  include_phone: z.boolean().optional(),
};
const tags = ['events'];
const responses = { ...errorResponses, 409: errorSchema };

export const webhookEndpointRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/routes/tenants/:tenant_id/webhook-endpoints',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'Subscribe a URL to events (Standard Webhooks); the signing secret is shown once',
          tags,
          security: bearer,
          params: tenantParams,
          body: z.object(fields).strict(),
          response: { 201: withSecret, ...responses },
        },
      },
      async (request, reply) => {
        const { endpoint: row, secret } = await createEndpoint(deps.db, deps.keyring, request.tenant.id, request.body);
        return reply.status(201).send({ ...endpointView(row), secret });
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/webhook-endpoints',
      {
        config: { auth: 'events' },
        schema: {
          summary: "The tenant's webhook endpoints (never their secrets)",
          tags,
          security: bearer,
          params: tenantParams,
          response: { 200: z.object({ endpoints: z.array(endpoint) }), ...responses },
        },
      },
      async (request) => ({ endpoints: (await listEndpoints(deps.db, request.tenant.id)).map(endpointView) }),
    );

    app.get(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'One webhook endpoint',
          tags,
          security: bearer,
          params: endpointParams,
          response: { 200: endpoint, ...responses },
        },
      },
      async (request) => endpointView(await getEndpoint(deps.db, request.tenant.id, request.params.id)),
    );

    app.patch(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'Change an endpoint; `enabled: true` re-enables one that was disabled',
          tags,
          security: bearer,
          params: endpointParams,
          body: z
            .object({ ...fields, url: fields.url.optional(), events: events.optional(), enabled: z.boolean().optional() })
            .strict()
            .refine((b) => Object.keys(b).length > 0, 'must change at least one field'),
          response: { 200: endpoint, ...responses },
        },
      },
      async (request) => endpointView(await updateEndpoint(deps.db, request.tenant.id, request.params.id, request.body)),
    );

    app.delete(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'Delete an endpoint and its delivery log',
          tags,
          security: bearer,
          params: endpointParams,
          response: { 204: z.null().describe('deleted'), ...responses },
        },
      },
      async (request, reply) => {
        await deleteEndpoint(deps.db, request.tenant.id, request.params.id);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id/rotate-secret',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'A new signing secret, shown once; for 24 hours the old and the new one both sign each delivery',
          tags,
          security: bearer,
          params: endpointParams,
          response: { 200: withSecret, ...responses },
        },
      },
      async (request) => {
        const { endpoint: row, secret } = await rotateSecret(deps.db, deps.keyring, request.tenant.id, request.params.id);
        return { ...endpointView(row), secret };
      },
    );

    app.get(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id/deliveries',
      {
        config: { auth: 'events' },
        schema: {
          summary: "An endpoint's deliveries, newest first: attempts, last status code, latency, next retry",
          tags,
          security: bearer,
          params: endpointParams,
          querystring: z
            .object({
              status: z.enum(['pending', 'delivered', 'failed']).optional(),
              cursor: z.string().max(64).optional(),
              limit: z.coerce.number().int().min(1).max(200).default(50),
            })
            .strict(),
          response: {
            200: z.object({
              deliveries: z.array(
                z.object({
                  id: z.string(),
                  event_id: z.string(),
                  event_type: z.string(),
                  status: z.enum(['pending', 'delivered', 'failed']),
                  attempts: z.number(),
                  last_status_code: z.number().nullable(),
                  latency_ms: z.number().nullable().describe("the last attempt's round trip"),
                  last_error: z.string().nullable().describe('TIMEOUT, CONNECTION_FAILED, EGRESS_REFUSED or ENDPOINT_DISABLED'),
                  next_retry_at: z.string().nullable(),
                  created_at: z.string(),
                  delivered_at: z.string().nullable(),
                }),
              ),
              next_cursor: z.string().nullable(),
            }),
            ...responses,
          },
        },
      },
      async (request) => listDeliveries(deps.db, request.tenant.id, request.params.id, request.query),
    );

    app.post(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id/deliveries/:delivery_id/redeliver',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'Send a delivery again: same event id, same body',
          tags,
          security: bearer,
          params: endpointParams.extend({ delivery_id: z.uuid('must be a delivery id (UUID)') }),
          response: { 202: z.object({ id: z.string(), status: z.literal('pending') }), ...responses },
        },
      },
      async (request, reply) =>
        reply.status(202).send(await redeliver(deps.db, request.tenant.id, request.params.id, request.params.delivery_id)),
    );

    app.post(
      '/routes/tenants/:tenant_id/webhook-endpoints/:id/replay',
      {
        config: { auth: 'events' },
        schema: {
          summary: 'Send again the subscribed events whose created_at is in [since, until)',
          tags,
          security: bearer,
          params: endpointParams,
          body: z
            .object({
              since: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' }),
              until: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' }).optional(),
              types: z.array(eventType).min(1).optional(),
            })
            .strict(),
          response: { 202: z.object({ count: z.number().describe('deliveries queued') }), ...responses },
        },
      },
      async (request, reply) => {
        const { since, until, types } = request.body;
        const queued = await replay(deps.db, request.tenant.id, request.params.id, {
          since: new Date(since),
          until: until ? new Date(until) : undefined,
          types,
        });
        return reply.status(202).send(queued);
      },
    );
  };
