import { setTimeout as delay } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import type { PulsePageInput, PulsePageResult, PulseRunConfig, RunCounts } from '../../contracts/pulse.js';
import { campaignSends, channels, contacts, pulseCampaigns, pulseRuns, type Channel } from '../db/schema.js';
import { callProvider, checkWindow, type OutboundDeps } from '../messaging/outbound.js';
import { providerIdHash } from '../messaging/provider-ids.js';
import { FailureType, NON_RETRYABLE_FAILURES } from '../platform/errors.js';
import { maxConcurrentSends } from '../tenants/settings.js';
import { emitEvent } from '../events/emit.js';
import { pickContent } from './content.js';
import { decryptAttributes } from './contacts.js';
import { audienceFilter, runCounts } from './runs.js';

/** Language code sent with a campaign's window template (campaigns do not name one yet). */
const PULSE_TEMPLATE_LANGUAGE = 'en';
/** Sends in flight at once; pacing, not this, sets the rate. */
const MAX_IN_FLIGHT = 32;
/** How often a page looks at the campaign's paused flag. */
const PAUSE_CHECK_MS = 500;
/** How far behind schedule sending may fall and still catch up: at most half a second's sends at once. */
const MAX_CATCH_UP_MS = 500;
/** How often a page heartbeats, also while it waits on sends in flight (the SDK throttles the calls). */
const HEARTBEAT_EVERY_MS = 1000;
/**
 * A send's claim stays current this long after its last renewal, renewed every third of it while
 * the provider call runs: twice the page's heartbeat timeout, so an attempt stalled long enough
 * for Temporal to retry it still holds its sends, and one that died frees them soon after.
 */
const SEND_LEASE_MS = 30_000;
/** How often a send waiting for another attempt's claim looks again. */
const CLAIM_POLL_MS = 500;

type SendOutcome = 'sent' | 'failed' | 'skipped_opted_out' | 'skipped_window' | 'already_done';

/** What a page needs of the activity running it. */
export interface PageContext {
  heartbeat(): void;
  signal: AbortSignal;
}

/** This page attempt: its fence (the run's fence it took) and its activity context. */
interface Attempt extends PageContext {
  fence: number;
}

/** A newer attempt of the page took the run: this one stops without sending. */
const superseded = () =>
  ApplicationFailure.create({ type: FailureType.AttemptSuperseded, message: 'a newer attempt of this campaign page is running' });

/** Snapshots the campaign and opens the run row; null when the campaign or the tenant's default channel is gone. */
export async function startRun(
  { db }: OutboundDeps,
  input: { tenantId: string; campaignId: string; runId: string },
): Promise<PulseRunConfig | null> {
  const [campaign] = await db
    .select()
    .from(pulseCampaigns)
    .where(and(eq(pulseCampaigns.id, input.campaignId), eq(pulseCampaigns.tenantId, input.tenantId)));
  if (!campaign) return null;
  const [channel] = await db
    .select({ id: channels.id })
    .from(channels)
    .where(and(eq(channels.tenantId, input.tenantId), eq(channels.isDefault, true)));
  if (!channel) return null;
  const [{ n }] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(contacts)
    .where(audienceFilter(input.tenantId, campaign.audience));
  await db
    .insert(pulseRuns)
    .values({ id: input.runId, tenantId: input.tenantId, campaignId: input.campaignId, targeted: n })
    .onConflictDoNothing();
  const [run] = await db.select({ startedAt: pulseRuns.startedAt }).from(pulseRuns).where(eq(pulseRuns.id, input.runId));
  return {
    tenantId: input.tenantId,
    campaignId: input.campaignId,
    runId: input.runId,
    channelId: channel.id,
    ratePerSecond: campaign.ratePerSecond,
    audience: campaign.audience,
    message: campaign.message,
    startedAt: run.startedAt.getTime(),
  };
}

export async function finishRun(
  { db }: OutboundDeps,
  input: { runId: string; status: 'completed' | 'cancelled' },
): Promise<RunCounts | null> {
  await db
    .update(pulseRuns)
    .set({ status: input.status, finishedAt: sql`now()` as unknown as Date })
    .where(and(eq(pulseRuns.id, input.runId), eq(pulseRuns.status, 'running')));
  const counts = await runCounts(db, input.runId);
  // Read back rather than trust the update: a retried finish must still emit (the event id makes it once).
  const [run] = await db
    .select({ tenantId: pulseRuns.tenantId, campaignId: pulseRuns.campaignId, status: pulseRuns.status })
    .from(pulseRuns)
    .where(eq(pulseRuns.id, input.runId));
  if (run?.status === 'completed') {
    await emitEvent(db, {
      tenantId: run.tenantId,
      type: 'campaign.run_completed',
      key: input.runId,
      data: { campaign_id: run.campaignId, run_id: input.runId, ...counts },
    });
  }
  return counts;
}

type ClaimedContact = {
  claimed: boolean;
  earlier: string | null;
  earlier_fence: number | null;
  lease_until: Date | null;
  opted_in: boolean | null;
  phone_enc: string;
  name_enc: string | null;
  tags: string[];
  attributes_enc: string | null;
  last_inbound_at: Date | null;
};

/**
 * Claims the contact's (run, contact) row for this attempt and reads the contact, in one round
 * trip. A row still 'sending' from an older attempt is taken over once its lease has lapsed;
 * while that attempt may still be sending it, this one waits. Null: a previous attempt finished it.
 */
async function claim(
  deps: OutboundDeps,
  config: PulseRunConfig,
  contactId: string,
  attempt: Attempt,
): Promise<ClaimedContact | undefined | null> {
  for (;;) {
    // The subqueries on campaign_sends see the snapshot before the claim: the row an earlier attempt left.
    const {
      rows: [contact],
    } = await deps.db.execute<ClaimedContact>(sql`
      WITH claim AS (
        INSERT INTO campaign_sends AS s (run_id, contact_id, tenant_id, status, fence)
        VALUES (${config.runId}, ${contactId}, ${config.tenantId}, 'sending', ${attempt.fence})
        ON CONFLICT (run_id, contact_id) DO UPDATE SET fence = excluded.fence, lease_until = NULL
         WHERE s.status = 'sending' AND s.fence < excluded.fence AND (s.lease_until IS NULL OR s.lease_until < now())
        RETURNING 1
      ), earlier AS (
        SELECT s.status, s.fence, s.lease_until FROM campaign_sends s WHERE s.run_id = ${config.runId} AND s.contact_id = ${contactId}
      )
      SELECT EXISTS (SELECT 1 FROM claim) AS claimed,
             (SELECT status FROM earlier) AS earlier, (SELECT fence FROM earlier) AS earlier_fence,
             (SELECT lease_until FROM earlier) AS lease_until,
             c.opted_in, c.phone_enc, c.name_enc, c.tags, c.attributes_enc,
             (SELECT max(cv.last_inbound_at) FROM conversations cv WHERE cv.tenant_id = c.tenant_id AND cv.contact_id = c.id) AS last_inbound_at
        FROM contacts c
       WHERE c.id = ${contactId} AND c.tenant_id = ${config.tenantId}`);
    if (!contact || contact.claimed) return contact;
    if (contact.earlier && contact.earlier !== 'sending') return null;
    if ((contact.earlier_fence ?? 0) > attempt.fence) throw superseded();
    // Another attempt holds the row (or finished it just now): look again once its lease may have lapsed.
    const lapse = contact.lease_until ? new Date(contact.lease_until).getTime() - Date.now() : 0;
    await delay(Math.max(50, Math.min(CLAIM_POLL_MS, lapse)), undefined, { signal: attempt.signal });
  }
}

/**
 * One contact, exactly once per run: the (run, contact) row in campaign_sends is the record of
 * the outbound module's first step, claimed first; a row already final means a previous attempt
 * finished it; a row still 'sending' (worker killed mid-send) is resent with the same provider
 * idempotency key once the attempt that left it can no longer be sending it. Right before the
 * provider call the row is fenced: it goes out only while this attempt's fence is still the run's.
 * Consent is read at send time, so an opt-out during a run takes effect for every contact not yet
 * sent. The window check and the provider call are the outbound module's.
 */
async function sendOne(
  deps: OutboundDeps,
  config: PulseRunConfig,
  channel: Channel,
  contactId: string,
  attempt: Attempt,
): Promise<SendOutcome> {
  const { db, keyring } = deps;
  const contact = await claim(deps, config, contactId, attempt);
  if (contact === null) return 'already_done';
  const row = and(eq(campaignSends.runId, config.runId), eq(campaignSends.contactId, contactId), eq(campaignSends.status, 'sending'));
  const mine = and(row, eq(campaignSends.fence, attempt.fence));
  // A sent message is recorded even if the claim lapsed meanwhile; anything else only while the claim is ours.
  const finish = (values: Partial<typeof campaignSends.$inferInsert>) =>
    db
      .update(campaignSends)
      .set({ ...values, leaseUntil: null })
      .where(values.status === 'sent' ? row : mine);

  if (!contact || contact.opted_in !== true) {
    await finish({ status: 'skipped_opted_out' });
    return 'skipped_opted_out';
  }
  const name = contact.name_enc ? keyring.decrypt(contact.name_enc, { tenantId: config.tenantId, column: contacts.nameEnc }) : null;
  const windowTemplate = config.message.window_template;
  const window = checkWindow(
    contact.last_inbound_at,
    windowTemplate ? { name: windowTemplate, language: PULSE_TEMPLATE_LANGUAGE, parameters: [name ?? ''] } : null,
  );
  if (window.via === 'closed') {
    await finish({ status: 'skipped_window' });
    return 'skipped_window';
  }
  const content = pickContent(config.message, {
    name,
    tags: contact.tags,
    attributes: decryptAttributes(keyring, config.tenantId, contact.attributes_enc),
  });
  // The fence: the row is still ours and no newer attempt has begun, checked and leased in one statement.
  const lease = () => sql`now() + ${`${SEND_LEASE_MS} milliseconds`}::interval` as unknown as Date;
  const [fenced] = await db
    .update(campaignSends)
    .set({ leaseUntil: lease() })
    .where(and(mine, sql`(SELECT r.fence FROM pulse_runs r WHERE r.id = ${config.runId}) = ${attempt.fence}`))
    .returning({ fence: campaignSends.fence });
  if (!fenced) throw superseded();
  // Renewed while the call runs (a slot wait or a slow provider), so a newer attempt waits for its outcome.
  const renew = setInterval(() => {
    void db
      .update(campaignSends)
      .set({ leaseUntil: lease() })
      .where(mine)
      .catch(() => undefined);
  }, SEND_LEASE_MS / 3);
  try {
    const result = await callProvider(deps, {
      tenantId: config.tenantId,
      channel,
      to: keyring.decrypt(contact.phone_enc, { tenantId: config.tenantId, column: contacts.phoneEnc }),
      text: content.text,
      idempotencyKey: `${config.tenantId}:pulse:${config.runId}:${contactId}`,
      inReplyTo: [],
      window,
    });
    await finish({
      status: 'sent',
      templateName: window.via === 'template' ? window.template.name : null,
      providerMessageId: providerIdHash(keyring, result.providerMessageId),
      sentAt: sql`now()` as unknown as Date,
    });
    return 'sent';
  } catch (err) {
    // Throttling and transient errors fail the page, which is retried with backoff and resends
    // this contact under the same idempotency key (the lease is let go: nothing is in flight);
    // a permanent rejection is recorded.
    if (!(err instanceof ApplicationFailure && (err.nonRetryable || NON_RETRYABLE_FAILURES.includes(err.type ?? '')))) {
      await db
        .update(campaignSends)
        .set({ leaseUntil: null })
        .where(mine)
        .catch(() => undefined);
      throw err;
    }
    // The failure type, never its message: provider messages can echo the number or text.
    await finish({ status: 'failed', error: err.type ?? err.name });
    return 'failed';
  } finally {
    clearInterval(renew);
  }
}

/**
 * Sends one page of the audience, paced to the campaign's rate, heartbeating as it goes.
 * Contacts this run already finished are left out of the page, so a retried page only
 * sends what the killed attempt did not. Each attempt first takes the run's next fence: an
 * earlier attempt still running (it missed its heartbeat, Temporal retried it) sends nothing more.
 */
export async function sendPage(deps: OutboundDeps, input: PulsePageInput, ctx: PageContext): Promise<PulsePageResult> {
  const { db } = deps;
  const { config } = input;
  const [run] = await db
    .update(pulseRuns)
    .set({ fence: sql`${pulseRuns.fence} + 1` })
    .where(eq(pulseRuns.id, config.runId))
    .returning({ fence: pulseRuns.fence });
  if (!run) throw ApplicationFailure.create({ type: FailureType.NotFound, message: 'the campaign run has no row', nonRetryable: true });
  const attempt: Attempt = { ...ctx, fence: run.fence };
  const ticker = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    return await sendFenced(deps, input, attempt);
  } finally {
    clearInterval(ticker);
  }
}

async function sendFenced(deps: OutboundDeps, input: PulsePageInput, ctx: Attempt): Promise<PulsePageResult> {
  const { db } = deps;
  const { config } = input;
  const [channel] = await db
    .select()
    .from(channels)
    .where(and(eq(channels.id, config.channelId), eq(channels.tenantId, config.tenantId)));
  if (!channel) return { nextCursor: null, nextSendAt: input.nextSendAt, handled: 0, paused: false };
  const page = await db
    .select({ id: contacts.id })
    .from(contacts)
    .where(
      and(
        // Contacts who opted out since the run began stay in the page, to be counted as skipped.
        audienceFilter(config.tenantId, config.audience, new Date(config.startedAt)),
        input.cursor ? gt(contacts.id, input.cursor) : undefined,
        sql`NOT EXISTS (SELECT 1 FROM campaign_sends s WHERE s.run_id = ${config.runId} AND s.contact_id = contacts.id AND s.status <> 'sending')`,
      ),
    )
    .orderBy(asc(contacts.id))
    .limit(input.pageSize);

  // Pausing the campaign stops a run between two sends, not only between runs.
  const isPaused = async () =>
    (await db.select({ paused: pulseCampaigns.paused }).from(pulseCampaigns).where(eq(pulseCampaigns.id, config.campaignId)))[0]?.paused ??
    false;
  let paused = await isPaused();
  let checkedAt = Date.now();
  let dispatched = 0;

  // At most the tenant's send cap in flight (messaging/send-cap.ts), so a campaign alone never meets it.
  const maxInFlight = Math.min(MAX_IN_FLIGHT, await maxConcurrentSends(db, config.tenantId));
  const intervalMs = 1000 / config.ratePerSecond;
  // Each send has a due time one interval after the previous one; a page that starts (or a
  // send that runs) late catches up by at most MAX_CATCH_UP_MS, so bursts stay small.
  let due = input.nextSendAt || Date.now();
  const inFlight = new Set<Promise<unknown>>();
  let failure: unknown;
  for (const { id } of paused ? [] : page) {
    if (ctx.signal.aborted) break;
    if (Date.now() - checkedAt >= PAUSE_CHECK_MS) {
      checkedAt = Date.now();
      if ((paused = await isPaused())) break;
    }
    due = Math.max(due, Date.now() - MAX_CATCH_UP_MS);
    const wait = due - Date.now();
    if (wait > 0) await delay(wait);
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (failure) break;
    const p: Promise<unknown> = sendOne(deps, config, channel, id, ctx).then(
      () => inFlight.delete(p),
      (err: unknown) => {
        failure ??= err;
        inFlight.delete(p);
      },
    );
    inFlight.add(p);
    dispatched++;
    due += intervalMs;
  }
  await Promise.all(inFlight);
  // A database error leaves claimed rows 'sending'; the retried page resends them idempotently.
  if (failure) throw failure;
  if (ctx.signal.aborted) throw (ctx.signal.reason as Error | undefined) ?? new Error('cancelled');
  if (paused)
    return { nextCursor: dispatched > 0 ? page[dispatched - 1].id : input.cursor, nextSendAt: 0, handled: dispatched, paused: true };
  return {
    nextCursor: page.length === input.pageSize ? page[page.length - 1].id : null,
    nextSendAt: due,
    handled: page.length,
    paused: false,
  };
}
