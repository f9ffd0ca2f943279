import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import {
  eventDeliveriesSignal,
  eventDeliveryWorkflowId,
  type EventDeliveriesSignal,
  type EventDeliveryInput,
  type EventDeliveryWorkflow,
} from '../../contracts/events.js';

export interface EventRelayOptions {
  pool: pg.Pool;
  temporal: Client;
  taskQueue: string;
  log: FastifyBaseLogger;
  sweepMs: number;
  concurrency?: number;
}

const TEMPORAL_CALL_DEADLINE_MS = 5_000;
const BATCH = 100;
const orderLock = (param: string) => `hashtextextended(${param}::text, 7312)`;

/**
 * Hands pending event deliveries to their delivery workflow (signalWithStart), the pattern of the
 * inbound outbox relay (core/messaging/outbox-relay.ts): rows are read and marked dispatched under
 * the order key's advisory lock, oldest event first, so several API replicas keep each
 * conversation's order; a row signalled twice is dropped by the workflow or skipped by its
 * activity. Woken by the insert trigger's NOTIFY, and by a sweep for anything a wake-up missed.
 */
export class EventRelay {
  private readonly queued = new Set<string>();
  private running = 0;
  private timer?: NodeJS.Timeout;
  private listener?: pg.PoolClient;
  private sweeping = false;
  private again = false;
  private stopped = false;
  private readonly idle: (() => void)[] = [];

  constructor(private readonly opts: EventRelayOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    this.timer = setInterval(() => void this.sweep(), this.opts.sweepMs);
    try {
      this.listener = await this.opts.pool.connect();
      this.listener.on('notification', () => void this.sweep());
      this.listener.on('error', () => undefined);
      await this.listener.query('LISTEN parley_event_deliveries');
    } catch (err) {
      this.opts.log.warn({ err: { message: (err as Error).message } }, 'event relay cannot listen; sweeping only');
    }
    void this.sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.listener) {
      this.listener.release(true);
      this.listener = undefined;
    }
    if (this.running > 0 || this.sweeping) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private notifyIdle(): void {
    if (this.running === 0 && !this.sweeping && this.queued.size === 0) this.idle.splice(0).forEach((f) => f());
  }

  private async sweep(): Promise<void> {
    if (this.stopped) return;
    if (this.sweeping) {
      this.again = true;
      return;
    }
    this.sweeping = true;
    try {
      do {
        this.again = false;
        const { rows } = await this.opts.pool.query<{ order_key: string }>(
          `SELECT order_key FROM event_deliveries
            WHERE dispatched_generation IS DISTINCT FROM generation AND status = 'pending' AND next_dispatch_at <= now()
            GROUP BY order_key ORDER BY min(event_seq) LIMIT 200`,
        );
        for (const r of rows) this.queued.add(r.order_key);
        this.drain();
      } while (this.again && !this.stopped);
    } catch (err) {
      this.opts.log.warn({ err: { message: (err as Error).message } }, 'event relay sweep failed');
    } finally {
      this.sweeping = false;
      this.notifyIdle();
    }
  }

  private drain(): void {
    const limit = this.opts.concurrency ?? 8;
    while (this.running < limit && this.queued.size > 0) {
      const [key] = this.queued;
      this.queued.delete(key);
      this.running++;
      void this.dispatch(key)
        .catch((err: Error) => this.opts.log.error({ err: { message: err.message }, orderKey: key }, 'event relay failed'))
        .finally(() => {
          this.running--;
          this.drain();
          this.notifyIdle();
        });
    }
  }

  private async dispatch(orderKey: string): Promise<void> {
    const client = await this.opts.pool.connect();
    let locked = false;
    let refs: { id: string; generation: number }[] = [];
    try {
      const { rows } = await client.query<{ locked: boolean; id: string | null; generation: number; tenant_id: string }>(
        `WITH l AS (SELECT pg_try_advisory_lock(${orderLock('$1')}) AS locked)
         SELECT l.locked, d.id, d.generation, d.tenant_id FROM l LEFT JOIN LATERAL (
           SELECT id, generation, tenant_id FROM event_deliveries
            WHERE l.locked AND order_key = $1 AND status = 'pending' AND dispatched_generation IS DISTINCT FROM generation
            ORDER BY event_seq LIMIT $2
         ) d ON true`,
        [orderKey, BATCH + 1],
      );
      locked = rows[0].locked;
      const pending = rows.filter((r) => r.id !== null);
      if (pending.length === 0) return;
      refs = pending.slice(0, BATCH).map((r) => ({ id: r.id!, generation: r.generation }));
      const tenantId = pending[0].tenant_id;
      await this.opts.temporal.connection.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
        this.opts.temporal.workflow.signalWithStart<EventDeliveryWorkflow, [EventDeliveriesSignal]>('eventDeliveryWorkflow', {
          workflowId: eventDeliveryWorkflowId(tenantId, orderKey),
          taskQueue: this.opts.taskQueue,
          args: [{ tenantId, orderKey } satisfies EventDeliveryInput],
          signal: eventDeliveriesSignal,
          signalArgs: [{ deliveries: refs }],
        }),
      );
      await client.query(
        `UPDATE event_deliveries d SET dispatched_generation = r.generation, dispatch_attempts = 0
           FROM unnest($1::uuid[], $2::int[]) AS r(id, generation)
          WHERE d.id = r.id AND d.generation = r.generation`,
        [refs.map((r) => r.id), refs.map((r) => r.generation)],
      );
      if (pending.length > BATCH) this.queued.add(orderKey);
    } catch (err) {
      // While Temporal is unreachable the rows wait, backing off 0.5 s doubling to 30 s.
      if (refs.length > 0) {
        await client
          .query(
            `UPDATE event_deliveries SET dispatch_attempts = dispatch_attempts + 1,
                    next_dispatch_at = now() + least(30, 0.5 * power(2, least(dispatch_attempts, 6))) * interval '1 second'
              WHERE id = ANY($1::uuid[])`,
            [refs.map((r) => r.id)],
          )
          .catch(() => undefined);
      }
      throw err;
    } finally {
      const unlocked =
        !locked ||
        (await client.query(`SELECT pg_advisory_unlock(${orderLock('$1')})`, [orderKey]).then(
          () => true,
          () => false,
        ));
      client.release(!unlocked);
    }
  }
}
