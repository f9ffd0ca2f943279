import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { providerFailure } from './providers/http.js';

export interface PacingOptions {
  /** Never wait longer than this inside one activity attempt; Temporal retries after the backlog. */
  maxWaitMs: number;
  /** A claim whose round trip took longer than this is not used (see below). */
  toleranceMs: number;
}

/** Seconds between two claims of one number: 1/rate stretched by the tolerance, so any 1 s window of sends stays within the rate. */
export function claimSpacingSeconds(ratePerSecond: number, toleranceMs: number): number {
  return (1 + toleranceMs / 1000) / ratePerSecond;
}

const CLAIM_SQL = `
  WITH c AS (
    UPDATE channel_send_pacing SET last_sent_at = clock_timestamp()
     WHERE channel_id = $1 AND (last_sent_at IS NULL OR last_sent_at + $2 * interval '1 second' <= clock_timestamp())
    RETURNING true AS claimed)
  SELECT (SELECT claimed FROM c) AS claimed,
         extract(epoch FROM (p.last_sent_at + $2 * interval '1 second' - clock_timestamp())) * 1000 AS wait_ms
    FROM channel_send_pacing p WHERE p.channel_id = $1`;

/**
 * Runs `send` at a moment that keeps the channel within `ratePerSecond` across every worker
 * replica, through one Postgres row per channel (docs/providers.md, "Send rate"). With
 * spacing d = (1 + tolerance) / rate:
 *   1. reserve a slot: `next_slot_at` advances by d per reservation (one upsert, ordered by the
 *      row lock), so waiting senders are spread out instead of stampeding;
 *   2. sleep until the slot;
 *   3. claim: a conditional UPDATE sets `last_sent_at = clock_timestamp()` only if the previous
 *      claim is at least d old. Claims are serialised by the row lock and stamped by one clock,
 *      so any two are >= d apart, whatever the number of replicas or how late a sender woke;
 *   4. send at once, but only if the claim's round trip took at most `tolerance` (a stalled
 *      process must not fire a stale claim together with fresh ones); else claim again.
 * A send therefore starts within `tolerance` after its claim, so the sends of any window
 * [a, a + 1 s) have claims in (a - tolerance, a + 1 s): at most (1 + tolerance) / d = rate.
 */
export async function withSendSlot<T>(db: Db, channelId: string, ratePerSecond: number, opts: PacingOptions, send: () => Promise<T>): Promise<T> {
  const spacing = claimSpacingSeconds(ratePerSecond, opts.toleranceMs);
  const backlog = await db.execute<{ ahead_ms: number }>(
    sql`SELECT extract(epoch FROM next_slot_at - clock_timestamp()) * 1000 AS ahead_ms FROM channel_send_pacing WHERE channel_id = ${channelId}`,
  );
  const ahead = Number(backlog.rows[0]?.ahead_ms ?? 0);
  if (ahead > opts.maxWaitMs) {
    // A deep queue: wait outside the activity instead of holding a slot we cannot use in time.
    const retryAfter = String(Math.ceil((ahead - opts.maxWaitMs / 2) / 1000));
    throw providerFailure('throttled', { provider: 'pacing', title: 'send queue of this number is full' }, new Headers({ 'retry-after': retryAfter }));
  }
  const reserved = await db.execute<{ wait_ms: number }>(sql`
    INSERT INTO channel_send_pacing AS p (channel_id, next_slot_at)
    VALUES (${channelId}, clock_timestamp() + ${spacing} * interval '1 second')
    ON CONFLICT (channel_id) DO UPDATE
      SET next_slot_at = greatest(p.next_slot_at, clock_timestamp()) + ${spacing} * interval '1 second'
    RETURNING extract(epoch FROM (p.next_slot_at - ${spacing} * interval '1 second' - clock_timestamp())) * 1000 AS wait_ms`);
  const wait = Number(reserved.rows[0].wait_ms);
  if (wait > 0) await delay(wait);

  const deadline = performance.now() + opts.maxWaitMs;
  while (performance.now() < deadline) {
    // A connection of our own: only the claim's round trip is timed, not the wait for the pool.
    const client = await db.$client.connect();
    let claimed: boolean;
    let waitMs: number;
    let roundTrip: number;
    try {
      const before = performance.now();
      const { rows } = await client.query<{ claimed: boolean | null; wait_ms: number | null }>(CLAIM_SQL, [channelId, spacing]);
      roundTrip = performance.now() - before;
      claimed = rows[0]?.claimed === true;
      waitMs = Number(rows[0]?.wait_ms ?? 1);
    } finally {
      client.release();
    }
    if (claimed && roundTrip <= opts.toleranceMs) return send();
    if (!claimed) await delay(Math.max(1, Math.ceil(waitMs)));
  }
  throw providerFailure('throttled', { provider: 'pacing', title: 'could not claim a send slot' });
}
