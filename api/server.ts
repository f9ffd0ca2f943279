import type { FastifyInstance } from 'fastify';
import type { Config } from '../core/platform/config.js';
import { OutboxRelay } from '../core/messaging/outbox-relay.js';
import { createPool } from '../core/db/client.js';
import type { Services } from '../core/platform/services.js';
import { createTemporalClient } from '../core/temporal/client.js';
import { ensureRetentionSchedule } from '../core/privacy/retention.js';
import { EventRelay } from '../core/events/relay.js';
import { buildApp } from './app.js';

const RELAY_CONCURRENCY = 8;
const EVENT_RELAY_CONCURRENCY = 4;

export interface RunningApi {
  app: FastifyInstance;
  relay: OutboxRelay;
  url: string;
  close(): Promise<void>;
}

/** The API process: HTTP server plus the outbox relay that feeds Temporal. */
export async function startApi(
  config: Config,
  runtime: Services,
  temporalAddress: string,
  opts: { listen?: boolean; logStream?: NodeJS.WritableStream } = {},
): Promise<RunningApi> {
  const temporal = await createTemporalClient({
    address: temporalAddress,
    namespace: config.TEMPORAL_NAMESPACE,
    keyring: runtime.keyring,
    payloadCodec: config.PARLEY_PAYLOAD_CODEC === 'on',
  });
  const relayRef: { current?: OutboxRelay } = {};
  const app = await buildApp(
    {
      config,
      pool: runtime.pool,
      db: runtime.db,
      keyring: runtime.keyring,
      providers: runtime.providers,
      temporal,
      adminApiKey: runtime.adminApiKey,
      relay: { kick: (id) => relayRef.current?.kick(id) },
    },
    { logStream: opts.logStream },
  );
  // The relay holds a connection while it signals Temporal; its own pool keeps that off the request path.
  const relayPool = createPool(runtime.databaseUrl, RELAY_CONCURRENCY + 1);
  const relay = new OutboxRelay({
    pool: relayPool,
    concurrency: RELAY_CONCURRENCY,
    temporal,
    keyring: runtime.keyring,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    log: app.log,
    sweepMs: config.RELAY_SWEEP_MS,
    defaultDebounceMs: config.CONVERSATION_DEBOUNCE_MS,
    windowSeconds: config.CONVERSATION_WINDOW_S,
    turnsPerRun: config.CONVERSATION_TURNS_PER_RUN,
  });
  relayRef.current = relay;
  relay.start();
  // Event deliveries have their own pool: a receiver backlog must not hold up inbound relaying.
  const eventPool = createPool(runtime.databaseUrl, EVENT_RELAY_CONCURRENCY + 2);
  const events = new EventRelay({
    pool: eventPool,
    concurrency: EVENT_RELAY_CONCURRENCY,
    temporal,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    log: app.log,
    sweepMs: Math.max(config.RELAY_SWEEP_MS, 1000),
  });
  await events.start();
  await ensureRetentionSchedule(temporal, { taskQueue: config.TEMPORAL_TASK_QUEUE, every: config.RETENTION_PURGE_EVERY }).catch(
    (err: Error) => app.log.warn({ err: { message: err.message } }, 'retention schedule not created; retried at the next start'),
  );
  let url = '';
  if (opts.listen !== false) url = await app.listen({ port: config.PORT, host: config.HOST });
  await app.ready();
  return {
    app,
    relay,
    url,
    async close() {
      await app.close();
      await relay.stop();
      await relayPool.end();
      await events.stop();
      await eventPool.end();
      await temporal.connection.close();
    },
  };
}
