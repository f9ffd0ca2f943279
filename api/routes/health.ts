import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { eventHealth } from '../../core/events/operations.js';
import { RELAY_DEAD_LETTER_ATTEMPTS } from '../../core/messaging/outbox-relay.js';
import type { ApiDeps } from '../deps.js';

const TEMPORAL_PING_DEADLINE_MS = 2_000;

export const healthRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Service health and queue metrics (the legacy WhatsApp Engine health check)',
          tags: ['health'],
          response: {
            200: z.object({
              status: z.literal('ok'),
              service: z.string(),
              queue: z.object({
                by_status: z.record(z.string(), z.number()),
                oldest_queued_age_s: z.number().nullable(),
              }),
              relay: z.object({
                pending: z.number(),
                oldest_pending_age_s: z.number().nullable(),
                dead_lettered: z.number().describe('Pending messages whose delivery to Temporal keeps failing (retried every 5 minutes)'),
              }),
              turns: z.object({
                failed_24h: z
                  .number()
                  .describe("Turns of the last 24 hours whose planning kept failing, answered with the tenant's fallback message"),
              }),
              events: z.object({
                pending_deliveries: z.number().describe('Outbound event deliveries not yet delivered or failed'),
                endpoints_disabled: z.number().describe('Webhook endpoints disabled for answering 410 or failing for 24 hours'),
              }),
              warnings: z.array(z.string()).describe('Conditions an operator should look at; empty when all is well'),
            }),
          },
        },
      },
      async () => {
        const [jobs, relay, failed, events] = await Promise.all([
          deps.pool.query<{ status: string; n: number; oldest: number | null }>(
            `SELECT status, count(*)::int AS n,
                    extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued'))::float8 AS oldest
               FROM jobs GROUP BY status`,
          ),
          deps.pool.query<{ n: number; oldest: number | null; dead: number }>(
            `SELECT count(*)::int AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest,
                    count(*) FILTER (WHERE attempts >= $1)::int AS dead
               FROM outbox WHERE delivered_at IS NULL`,
            [RELAY_DEAD_LETTER_ATTEMPTS],
          ),
          deps.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM failed_turns WHERE created_at > now() - interval '24 hours'`),
          eventHealth(deps.db),
        ]);
        const queued = jobs.rows.find((r) => r.status === 'queued');
        return {
          status: 'ok' as const,
          service: 'parley',
          queue: {
            by_status: Object.fromEntries(jobs.rows.map((r) => [r.status, r.n])),
            oldest_queued_age_s: queued?.oldest != null ? Number(queued.oldest) : null,
          },
          relay: {
            pending: relay.rows[0].n,
            oldest_pending_age_s: relay.rows[0].oldest != null ? Number(relay.rows[0].oldest) : null,
            dead_lettered: relay.rows[0].dead,
          },
          turns: { failed_24h: failed.rows[0].n },
          events,
          warnings: [
            ...(relay.rows[0].dead > 0
              ? [`${relay.rows[0].dead} inbound message(s) dead-lettered: their delivery to Temporal keeps failing`]
              : []),
            ...(failed.rows[0].n > 0 ? [`${failed.rows[0].n} turn(s) in the last 24 hours answered with the fallback after failing`] : []),
            ...(events.endpoints_disabled > 0
              ? [`${events.endpoints_disabled} webhook endpoint(s) disabled after answering 410 or failing for 24 hours`]
              : []),
          ],
        };
      },
    );

    const healthBody = z.object({
      status: z.enum(['ok', 'unavailable']),
      postgres: z.enum(['ok', 'unreachable']),
      temporal: z.enum(['ok', 'unreachable']),
      message: z.string().optional(),
    });
    app.get(
      '/health',
      {
        config: { auth: 'public' },
        schema: {
          summary: 'Readiness: 200 when PostgreSQL and Temporal are reachable, 503 naming what is not',
          tags: ['health'],
          response: { 200: healthBody, 503: healthBody },
        },
      },
      async (_request, reply) => {
        const [postgres, temporal] = await Promise.all([
          deps.pool.query('SELECT 1').then(
            () => 'ok' as const,
            () => 'unreachable' as const,
          ),
          deps.temporal.connection
            .withDeadline(Date.now() + TEMPORAL_PING_DEADLINE_MS, () => deps.temporal.workflowService.getSystemInfo({}))
            .then(
              () => 'ok' as const,
              () => 'unreachable' as const,
            ),
        ]);
        const down = [postgres === 'ok' ? null : 'PostgreSQL', temporal === 'ok' ? null : 'Temporal'].filter(Boolean);
        if (down.length === 0) return { status: 'ok' as const, postgres, temporal };
        return reply.status(503).send({ status: 'unavailable' as const, postgres, temporal, message: `${down.join(' and ')} unreachable` });
      },
    );
  };
