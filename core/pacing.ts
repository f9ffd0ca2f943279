import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { providerFailure } from './providers/http.js';

export interface PacingOptions {
  /** A send may start at most this long after its slot; a later wake-up gives the slot up. */
  graceMs: number;
  /** Never wait longer than this inside one activity attempt; Temporal retries after the backlog. */
  maxWaitMs: number;
}

/** Seconds between two slots of one number: 1/rate, stretched by the grace so any 1 s window stays within the rate. */
export function slotSpacingSeconds(ratePerSecond: number, graceMs: number): number {
  return (1 + graceMs / 1000) / ratePerSecond;
}

/**
 * Runs `send` in a send slot of the channel, shared by every worker replica through one
 * Postgres row per channel (docs/providers.md, "Send rate"):
 *   - reserving a slot is a single upsert, so the row lock orders concurrent reservations and
 *     consecutive slots are `spacing = (1 + grace) / rate` apart on the database clock;
 *   - the send starts no earlier than its slot (we sleep until the latest moment the slot can
 *     be, given the query's round trip) and no later than `grace` after it (else re-reserve);
 *   - so the sends of any window [a, a + 1 s) have slots in (a - grace, a + 1 s): an interval
 *     of (1 + grace) seconds holding at most rate slots.
 */
export async function withSendSlot<T>(db: Db, channelId: string, ratePerSecond: number, opts: PacingOptions, send: () => Promise<T>): Promise<T> {
  const spacing = slotSpacingSeconds(ratePerSecond, opts.graceMs);
  for (let attempt = 0; attempt < 5; attempt++) {
    const backlog = await db.execute<{ ahead_ms: number }>(
      sql`SELECT extract(epoch FROM next_slot_at - clock_timestamp()) * 1000 AS ahead_ms FROM channel_send_pacing WHERE channel_id = ${channelId}`,
    );
    const ahead = Number(backlog.rows[0]?.ahead_ms ?? 0);
    if (ahead > opts.maxWaitMs) {
      // A deep queue: wait outside the activity instead of holding a slot we cannot use in time.
      throw providerFailure('throttled', { provider: 'pacing', title: 'send queue of this number is full' }, new Headers({ 'retry-after': String(Math.ceil((ahead - opts.maxWaitMs / 2) / 1000)) }));
    }
    const before = performance.now();
    const reserved = await db.execute<{ wait_ms: number }>(sql`
      INSERT INTO channel_send_pacing AS p (channel_id, next_slot_at)
      VALUES (${channelId}, clock_timestamp() + ${spacing} * interval '1 second')
      ON CONFLICT (channel_id) DO UPDATE
        SET next_slot_at = greatest(p.next_slot_at, clock_timestamp()) + ${spacing} * interval '1 second'
      RETURNING extract(epoch FROM (p.next_slot_at - ${spacing} * interval '1 second' - clock_timestamp())) * 1000 AS wait_ms`);
    const after = performance.now();
    const waitMs = Math.max(0, Number(reserved.rows[0].wait_ms));
    // The slot lies somewhere in [before + wait, after + wait] locally: wake at the latest bound.
    const target = after + waitMs;
    if (target > performance.now()) await delay(target - performance.now());
    if (performance.now() - (before + waitMs) <= opts.graceMs) return send();
  }
  throw providerFailure('throttled', { provider: 'pacing', title: 'worker too slow to keep its send slots' });
}
