import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { providerFailure } from './http.js';

export interface PacingOptions {
  /** Never wait longer than this inside one activity attempt; Temporal retries after the backlog. */
  maxWaitMs: number;
  /** A send may start at most this long after its slot; a later one gives the slot up. */
  toleranceMs: number;
}

/** Seconds between two slots of one number: 1/rate stretched by the tolerance, so any 1 s window of sends stays within the rate. */
export function slotSpacingSeconds(ratePerSecond: number, toleranceMs: number): number {
  return (1 + toleranceMs / 1000) / ratePerSecond;
}

const RESERVE_SQL = `
  INSERT INTO channel_send_pacing AS p (channel_id, next_slot_at)
  VALUES ($1, clock_timestamp() + $2 * interval '1 second')
  ON CONFLICT (channel_id) DO UPDATE
    SET next_slot_at = greatest(p.next_slot_at, clock_timestamp()) + $2 * interval '1 second'
  RETURNING extract(epoch FROM (p.next_slot_at - $2 * interval '1 second' - clock_timestamp())) * 1000 AS wait_ms`;

/**
 * Runs `send` in a send slot of the channel, shared by every worker replica through one
 * Postgres row per channel (docs/providers.md, "Send rate: how the per-number limit holds"). With d = (1 + tolerance) / rate:
 *   - reserving a slot is one upsert advancing `next_slot_at` by d; the row lock orders
 *     concurrent reservations and the database's clock stamps them, so slots are >= d apart;
 *   - the send starts no earlier than its slot: the slot lies in [before + wait, after + wait]
 *     of the reservation's round trip (timed on a connection of our own), and we wake at the
 *     later bound;
 *   - and no later than `tolerance` after it: a sender that finds itself later than
 *     before + wait + tolerance (slow round trip, late timer, stalled process) gives the slot up
 *     and reserves again.
 * So the sends of any window [a, a + 1 s) have slots in (a - tolerance, a + 1 s), a stretch of
 * (1 + tolerance) s holding at most rate slots. Dropped slots cost throughput, never excess.
 */
export async function withSendSlot<T>(
  db: Db,
  channelId: string,
  ratePerSecond: number,
  opts: PacingOptions,
  send: () => Promise<T>,
): Promise<T> {
  const spacing = slotSpacingSeconds(ratePerSecond, opts.toleranceMs);
  const deadline = performance.now() + opts.maxWaitMs;
  while (performance.now() < deadline) {
    const backlog = await db.execute<{ ahead_ms: number }>(
      sql`SELECT extract(epoch FROM next_slot_at - clock_timestamp()) * 1000 AS ahead_ms FROM channel_send_pacing WHERE channel_id = ${channelId}`,
    );
    const ahead = Number(backlog.rows[0]?.ahead_ms ?? 0);
    if (ahead > opts.maxWaitMs) {
      // A deep queue: wait outside the activity instead of holding a slot we cannot use in time.
      const retryAfter = String(Math.ceil((ahead - opts.maxWaitMs / 2) / 1000));
      throw providerFailure(
        'throttled',
        { provider: 'pacing', title: 'send queue of this number is full' },
        new Headers({ 'retry-after': retryAfter }),
      );
    }
    const client = await db.$client.connect();
    let before: number;
    let after: number;
    let wait: number;
    try {
      before = performance.now();
      const { rows } = await client.query<{ wait_ms: number }>(RESERVE_SQL, [channelId, spacing]);
      after = performance.now();
      wait = Math.max(0, Number(rows[0].wait_ms));
    } finally {
      client.release();
    }
    const wake = after + wait;
    if (wake > performance.now()) await delay(wake - performance.now());
    if (performance.now() - (before + wait) <= opts.toleranceMs) return send();
  }
  throw providerFailure('throttled', { provider: 'pacing', title: 'no send slot could be used in time' });
}
