import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import { messages as messagesTable } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { summarizeError } from '../platform/errors.js';
import { readSettings } from '../tenants/settings.js';
import {
  inboundSignal,
  type ConversationInput,
  type ConversationWorkflow,
  type InboundBatch,
  type InboundMessage,
} from '../../contracts/conversation.js';

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
  /** One signal carries at most this many messages and (ciphertext) bytes; the rest follow in the next signals. */
  maxBatchMessages?: number;
  maxBatchBytes?: number;
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
  running_bytes: string;
}

const TEMPORAL_CALL_DEADLINE_MS = 5_000;
/** Well under Temporal's 2 MB payload limit, after the codec's envelope. */
const DEFAULT_BATCH_BYTES = 256 * 1024;
const DEFAULT_BATCH_MESSAGES = 100;
/**
 * After this many failed attempts a conversation's rows count as dead-lettered: `GET /` reports them
 * and the relay logs an error; it keeps retrying every few minutes, so fixing the cause delivers them.
 */
export const RELAY_DEAD_LETTER_ATTEMPTS = 10;

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
        .catch((err: unknown) => this.opts.log.error({ err: summarizeError(err), conversationId }, 'outbox relay failed'))
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
      this.opts.log.warn({ err: summarizeError(err) }, 'outbox sweep failed');
    } finally {
      this.sweeping = false;
      this.notifyIdle();
    }
  }

  private async deliver(conversationId: string): Promise<void> {
    const maxMessages = this.opts.maxBatchMessages ?? DEFAULT_BATCH_MESSAGES;
    const maxBytes = this.opts.maxBatchBytes ?? DEFAULT_BATCH_BYTES;
    const client = await this.opts.pool.connect();
    let locked = false;
    let more = false;
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
                  t.settings,
                  sum(length(m.body_enc)) OVER (ORDER BY o.id) AS running_bytes
             FROM outbox o
             JOIN messages m ON m.id = o.message_id
             JOIN conversations c ON c.id = o.conversation_id
             JOIN tenants t ON t.id = c.tenant_id
            WHERE l.locked AND o.conversation_id = $1::uuid AND o.delivered_at IS NULL
            ORDER BY o.id
            LIMIT $2
         ) p ON true`,
        [conversationId, maxMessages + 1],
      );
      locked = found[0].locked;
      const pending = found.filter((r) => r.outbox_id !== null);
      // The oldest pending rows go first, whatever their backoff says: a row accepted during an
      // outage must not overtake an older one still waiting out its backoff. A backlog is split
      // into signals of bounded size (the first row always goes), each marked once it is sent.
      const rows = pending.filter((r, i) => i === 0 || (i < maxMessages && Number(r.running_bytes) <= maxBytes));
      if (rows.length === 0) return;
      more = rows.length < pending.length;
      ids = rows.map((r) => r.outbox_id);
      const first = rows[0];
      const debounceMs = readSettings(first).debounce_ms ?? this.opts.defaultDebounceMs;
      const messages: InboundMessage[] = rows.map((r) => ({
        id: r.message_id,
        seq: Number(r.seq),
        text: this.opts.keyring.decrypt(r.body_enc, { tenantId: r.tenant_id, column: messagesTable.bodyEnc }),
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
        this.opts.temporal.workflow.signalWithStart<ConversationWorkflow, [InboundBatch]>('conversationWorkflow', {
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
      if (more) this.queued.add(conversationId);
    } catch (err) {
      if (ids.length > 0) {
        // Back off per conversation: 0.5 s doubling to 30 s, so an outage is not a busy loop; a
        // dead-lettered conversation is retried every 5 minutes until its cause is fixed.
        const { rows: failed } = await client
          .query<{ attempts: number }>(
            `UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = now() + (CASE WHEN attempts + 1 >= $3 THEN 300
                                                    ELSE least(30, 0.5 * power(2, least(attempts, 6))) END) * interval '1 second'
              WHERE id = ANY($1::bigint[]) RETURNING attempts`,
            [ids, (err as Error).name, RELAY_DEAD_LETTER_ATTEMPTS],
          )
          .catch(() => ({ rows: [] as { attempts: number }[] }));
        if (failed.some((r) => r.attempts === RELAY_DEAD_LETTER_ATTEMPTS)) {
          this.opts.log.error({ conversationId, error: (err as Error).name, code: 'OUTBOX_DEAD_LETTERED' }, 'outbox rows dead-lettered');
        }
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
