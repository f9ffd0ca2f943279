import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Db } from './db/client.js';
import { providerFailure } from './providers/http.js';

export interface PacingOptions {
  /** Never wait longer than this inside one activity attempt; Temporal retries after the backlog. */
  maxWaitMs: number;
}

const CLAIM_TRIES = 200;

/**
 * Runs `send` at a moment that keeps the channel within `ratePerSecond` across every worker
 * replica, through one Postgres row per channel (docs/providers.md, "Send rate"):
 *   1. reserve a slot: `next_slot_at` advances by 1/rate per reservation (one upsert, ordered by
 *      the row lock), so waiting senders are spread out instead of stampeding;
 *   2. sleep until the slot;
 *   3. claim: a conditional UPDATE sets `last_sent_at = clock_timestamp()` only if the previous
 *      claim is at least 1/rate old. Claims are serialised by the row lock and stamped with the
 *      database's clock, so any two are >= 1/rate apart and any 1-second window holds at most
 *      `rate` of them, whatever the number of replicas or how late a sender woke up. A refused
 *      claim sleeps until the earliest allowed moment and tries again.
 * The request is issued right after a successful claim, with no sleep in between.
 */
export async function withSendSlot<T>(db: Db, channelId: string, ratePerSecond: number, opts: PacingOptions, send: () => Promise<T>): Promise<T> {
  const spacing = 1 / ratePerSecond;
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

  for (let i = 0; i < CLAIM_TRIES; i++) {
    const claim = await db.execute<{ claimed: boolean | null; wait_ms: number | null }>(sql`
      WITH c AS (
        UPDATE channel_send_pacing SET last_sent_at = clock_timestamp()
         WHERE channel_id = ${channelId}
           AND (last_sent_at IS NULL OR last_sent_at + ${spacing} * interval '1 second' <= clock_timestamp())
        RETURNING true AS claimed)
      SELECT (SELECT claimed FROM c) AS claimed,
             extract(epoch FROM (p.last_sent_at + ${spacing} * interval '1 second' - clock_timestamp())) * 1000 AS wait_ms
        FROM channel_send_pacing p WHERE p.channel_id = ${channelId}`);
    const row = claim.rows[0];
    if (row?.claimed) return send();
    await delay(Math.max(1, Math.ceil(Number(row?.wait_ms ?? 1))));
  }
  throw providerFailure('throttled', { provider: 'pacing', title: 'could not claim a send slot' });
}
