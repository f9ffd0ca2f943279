import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ActivityNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import {
  answerRemoteLookup,
  claimRemoteLookup,
  extendRemoteLease,
  REMOTE_LOOKUPS_CHANNEL,
  remoteAnswerBody,
  remoteOfferView,
  type Deliver,
} from '../../core/data-engine/remote.js';
import { JobNotifier } from '../../core/legacy-queue/notifier.js';
import type { ApiDeps } from '../deps.js';
import { bearer, errorResponses, errorSchema, tenantParams } from '../schemas.js';

/** The longest long-poll: below common proxy idle timeouts. */
const MAX_WAIT_S = 30;
/** A long-poll re-checks at least this often, for leases that ran out and missed notifications. */
const RECHECK_MS = 500;

const lease = z.coerce.number().int().min(1).max(60, 'must be at most 60 seconds');
const lookupParams = tenantParams.extend({ lookup_id: z.uuid('must be a lookup id (UUID)') });

/**
 * The tenant's own data worker (`npm run data-worker`) over HTTP: it pulls the lookups of the
 * sources it serves and answers them, with a `data_worker` key of its tenant. Parley completes
 * the waiting Temporal activity; the tenant never needs access to Parley's Temporal namespace.
 */
export const dataWorkerRoutes =
  (deps: ApiDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const notifier = new JobNotifier(deps.pool.options, REMOTE_LOOKUPS_CHANNEL);
    // Before the server waits for in-flight requests: long polls end (204) instead of holding shutdown.
    app.addHook('preClose', () => notifier.close());

    const deliver: Deliver = async (activity, settlement) => {
      const options = {
        serializationContext: {
          type: 'activity' as const,
          namespace: deps.config.TEMPORAL_NAMESPACE,
          activityId: activity.activityId,
          workflowId: activity.workflowId ?? undefined,
          isLocal: false,
        },
      };
      try {
        if (settlement.ok) await deps.temporal.activity.complete(activity.taskToken, settlement.result, options);
        else await deps.temporal.activity.fail(activity.taskToken, ApplicationFailure.create(settlement.failure), options);
        return true;
      } catch (err) {
        // The attempt timed out (or its workflow ended) before the answer came.
        if (err instanceof ActivityNotFoundError) return false;
        throw err;
      }
    };

    app.get(
      '/routes/tenants/:tenant_id/data-worker/next',
      {
        config: { auth: 'data_worker' },
        schema: {
          summary: "Lease the tenant's oldest open lookup (the data worker's poll)",
          description:
            'Only lookups of sources marked `served_by: tenant_worker`, before their deadline. The lease (`lease_s`, default 2 s) ' +
            'keeps other workers off it; a worker that dies lets it lapse and the lookup is offered again. `wait_s` long-polls up to 30 s.',
          tags: ['data'],
          security: bearer,
          params: tenantParams,
          querystring: z.object({
            wait_s: z.coerce.number().int().min(0).max(MAX_WAIT_S, `must be at most ${MAX_WAIT_S} seconds`).default(0),
            lease_s: lease.default(2),
          }),
          response: { 200: remoteOfferView, 204: z.null().describe('No lookup is waiting'), ...errorResponses },
        },
      },
      async (request, reply) => {
        const { tenant_id } = request.params;
        const deadline = Date.now() + request.query.wait_s * 1000;
        for (;;) {
          // A poller that hung up must not be handed a lookup it will never see.
          if (request.raw.socket?.destroyed) return reply.status(204).send(null);
          const offer = await claimRemoteLookup(deps.db, deps.keyring, tenant_id, request.query.lease_s * 1000);
          if (offer) {
            return {
              lookup_id: offer.id,
              kind: offer.kind,
              data_source: offer.dataSourceId,
              query: offer.query,
              params: offer.params,
              order: offer.order,
              timeout_ms: offer.timeoutMs,
              deadline: offer.deadline.toISOString(),
              lease_expires_at: offer.leaseExpiresAt.toISOString(),
            };
          }
          const left = deadline - Date.now();
          if (left <= 0 || notifier.isClosed) return reply.status(204).send(null);
          await notifier.wait(tenant_id, Math.min(left, RECHECK_MS));
        }
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/data-worker/lookups/:lookup_id/lease',
      {
        config: { auth: 'data_worker' },
        schema: {
          summary: 'Extend the lease on a lookup the data worker is still running',
          tags: ['data'],
          security: bearer,
          params: lookupParams,
          querystring: z.object({ lease_s: lease.default(2) }),
          response: { 200: z.object({ lookup_id: z.string(), lease_expires_at: z.string() }), 409: errorSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { tenant_id, lookup_id } = request.params;
        const until = await extendRemoteLease(deps.db, tenant_id, lookup_id, request.query.lease_s * 1000);
        return { lookup_id, lease_expires_at: until.toISOString() };
      },
    );

    app.post(
      '/routes/tenants/:tenant_id/data-worker/lookups/:lookup_id/result',
      {
        config: { auth: 'data_worker' },
        schema: {
          summary: "Answer a lookup: Parley completes the waiting activity and the customer's reply goes out",
          description:
            'The first answer settles the lookup; a second one (or one after the deadline) is a 409 and changes nothing. ' +
            "`rows` are the source's rows (at most 20); a `test` lookup needs only `source_ms`.",
          tags: ['data'],
          security: bearer,
          params: lookupParams,
          body: remoteAnswerBody,
          response: {
            200: z.object({ lookup_id: z.string(), status: z.enum(['completed', 'failed']) }),
            409: errorSchema,
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const { tenant_id, lookup_id } = request.params;
        const status = await answerRemoteLookup(deps.db, deps.keyring, {
          tenantId: tenant_id,
          id: lookup_id,
          answer: request.body,
          deliver,
        });
        return { lookup_id, status };
      },
    );
  };
