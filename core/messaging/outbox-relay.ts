import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import type { Keyring } from '../platform/crypto.js';
import { readSettings } from '../tenants/settings.js';
import { conversationWorkflow, inboundSignal, type ConversationInput, type InboundMessage } from '../../workflows/conversation.js';

export interface RelayOptions {
  pool: pg.Pool;
  temporal: Client;
  keyring: Keyring;
  taskQueue: string;
  log: FastifyBaseLogger;
  sweepMs: number;
  defaultDebounceMs: number;
  windowSeconds: number;
  turnsPerRun: number;
  /** Conversations relayed at once. */
  concurrency?: number;
}

interface PendingRow {
  outbox_id: string;
  message_id: string;
  seq: string;
  body_enc: string;
  received_at: Date;
  workflow_id: string;
  tenant_id: string;
  channel_id: string;
  contact_id: string;
  settings: Record<string, unknown>;
}

const TEMPORAL_CALL_DEADLINE_MS = 5_000;

/** The advisory lock key of a conversation's outbox rows; `param` is the placeholder holding its id. */
const conversationLock = (param: string) => `hashtextextended(${param}::text, 7311)`;

/**
 * Delivers accepted inbound messages from the outbox to their conversation workflows
 * (signalWithStart). Rows are read and marked delivered while the conversation's advisory
 * lock is held, so several API replicas relay each conversation in order; a signal that
 * reached Temporal before a failed update is re-sent and the workflow drops it by message id. While Temporal is unreachable rows wait and are retried with backoff.
 */
export class OutboxRelay {
  private readonly queued = new Set<string>();
  private running = 0;
  private timer?: NodeJS.Timeout;
  private sweeping = false;
  private stopped = false;
  private readonly idle: (() => void)[] = [];

  constructor(private readonly opts: RelayOptions) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.sweep(), this.opts.sweepMs);
    void this.sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.running > 0 || this.sweeping) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Relays one conversation now, instead of waiting for the next sweep. */
  kick(conversationId: string): void {
    if (this.stopped) return;
    this.queued.add(conversationId);
    this.drain();
  }

  private drain(): void {
    const limit = this.opts.concurrency ?? 16;
    while (this.running < limit && this.queued.size > 0) {
      const [conversationId] = this.queued;
      this.queued.delete(conversationId);
      this.running++;
      void this.deliver(conversationId)
        .catch((err: Error) => this.opts.log.error({ err: { message: err.message }, conversationId }, 'outbox relay failed'))
        .finally(() => {
          this.running--;
          this.drain();
          this.notifyIdle();
        });
    }
  }

  private notifyIdle(): void {
    if (this.running === 0 && !this.sweeping && this.queued.size === 0) this.idle.splice(0).forEach((f) => f());
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const { rows } = await this.opts.pool.query<{ conversation_id: string }>(
        `SELECT conversation_id FROM outbox
          WHERE delivered_at IS NULL AND next_attempt_at <= now()
          GROUP BY conversation_id ORDER BY min(id) LIMIT 200`,
      );
      for (const r of rows) this.queued.add(r.conversation_id);
      this.drain();
    } catch (err) {
      this.opts.log.warn({ err: { message: (err as Error).message } }, 'outbox sweep failed');
    } finally {
      this.sweeping = false;
      this.notifyIdle();
    }
  }

  private async deliver(conversationId: string): Promise<void> {
    const client = await this.opts.pool.connect();
    let locked = false;
    let ids: string[] = [];
    try {
      // A session lock, not a transaction's, taken and used in one round trip. The read's snapshot
      // predates the lock, so a previous holder's last update can be missed: its rows are then
      // signalled again and the workflow drops them by message id. Order holds either way.
      const { rows: found } = await client.query<PendingRow & { locked: boolean }>(
        `WITH l AS (SELECT pg_try_advisory_lock(${conversationLock('$1')}) AS locked)
         SELECT l.locked, p.* FROM l LEFT JOIN LATERAL (
           SELECT o.id AS outbox_id, m.id AS message_id, m.seq, m.body_enc, m.created_at AS received_at,
                  c.workflow_id, c.tenant_id, c.channel_id, c.contact_id,
                  t.settings
             FROM outbox o
             JOIN messages m ON m.id = o.message_id
             JOIN conversations c ON c.id = o.conversation_id
             JOIN tenants t ON t.id = c.tenant_id
            WHERE l.locked AND o.conversation_id = $1::uuid AND o.delivered_at IS NULL
            ORDER BY o.id
         ) p ON true`,
        [conversationId],
      );
      locked = found[0].locked;
      const rows = found.filter((r) => r.outbox_id !== null);
      // All of the conversation's pending rows go together, whatever their backoff says: a row
      // accepted during an outage must not overtake an older one still waiting out its backoff.
      if (rows.length === 0) return;
      ids = rows.map((r) => r.outbox_id);
      const first = rows[0];
      const debounceMs = readSettings(first).debounce_ms ?? this.opts.defaultDebounceMs;
      const messages: InboundMessage[] = rows.map((r) => ({
        id: r.message_id,
        seq: Number(r.seq),
        text: this.opts.keyring.decrypt(r.body_enc),
        receivedAt: r.received_at.toISOString(),
      }));
      const input: ConversationInput = {
        tenantId: first.tenant_id,
        channelId: first.channel_id,
        contactId: first.contact_id,
        conversationId,
        windowSeconds: this.opts.windowSeconds,
        turnsPerRun: this.opts.turnsPerRun,
        debounceMs,
      };
      await this.opts.temporal.connection.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
        this.opts.temporal.workflow.signalWithStart(conversationWorkflow, {
          workflowId: first.workflow_id,
          taskQueue: this.opts.taskQueue,
          args: [input],
          signal: inboundSignal,
          signalArgs: [{ messages, debounceMs }],
        }),
      );
      await client.query(
        `WITH done AS (UPDATE outbox SET delivered_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[]))
         SELECT pg_advisory_unlock(${conversationLock('$2')})`,
        [ids, conversationId],
      );
      locked = false;
    } catch (err) {
      if (ids.length > 0) {
        // Back off per conversation: 0.5 s doubling to 30 s, so an outage is not a busy loop.
        await client
          .query(
            `UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = now() + least(30, 0.5 * power(2, least(attempts, 6))) * interval '1 second'
              WHERE id = ANY($1::bigint[])`,
            [ids, (err as Error).name],
          )
          .catch(() => undefined);
      }
      throw err;
    } finally {
      // A connection must not go back to the pool holding the lock: unlock it, or drop it.
      const unlocked =
        !locked ||
        (await client.query(`SELECT pg_advisory_unlock(${conversationLock('$1')})`, [conversationId]).then(
          () => true,
          () => false,
        ));
      client.release(!unlocked);
    }
  }
}
