import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { messages, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { FailureType } from '../platform/errors.js';
import type { Providers } from '../providers/index.js';
import { providerIdForms, providerIdHash } from './provider-ids.js';

/*
 * Ambiguous provider sends are reconciled, never blindly repeated. Meta and Twilio take no
 * idempotency key, so a send that timed out after the request was written, or was cut off by a
 * worker crash, may already be on the customer's phone. Each provider call of an outbound
 * message is marked on its record first (beginAttempt); the mark is cleared only when the
 * provider surely did not take the message (it was never reached, or answered with its own
 * error). A retry that finds the mark asks before it sends (reconcileSend):
 *   - resend: the provider recognises a repeat under the same key (Infobip's messageId, the sandbox);
 *   - lookup: the provider's message API is asked (Twilio's Messages list);
 *   - status-callback: only the provider's status webhook can tell (Meta echoes the send key as
 *     `biz_opaque_callback_data`); the retry waits for it, and if none comes within
 *     STATUS_CALLBACK_WAIT_MS the message is recorded as `unknown`, never resent and never `failed`.
 * A status webhook that echoes the send key binds the provider's message id to the record
 * (bindSendKey), whenever it arrives, also after the message was recorded as `unknown`.
 */

/** How long an unknown send waits for a status webhook that echoes its key. */
export const STATUS_CALLBACK_WAIT_MS = 5 * 60_000;

/** What reconciliation found out about an earlier call whose outcome is unknown. */
export type Reconciled =
  /**
   * The provider has the message: record it as sent with this id (raw from a lookup, or the
   * stored form a status webhook already bound, which markOutboundSent keeps as it is).
   */
  | { outcome: 'sent'; providerMessageId: string }
  /**
   * Call it again: the provider does not have it, or (`mayHaveIt`) a repeat under the same key
   * cannot reach the customer twice.
   */
  | { outcome: 'resend'; mayHaveIt: boolean }
  /** Not known yet: ask again later. */
  | { outcome: 'waiting'; retryInMs: number }
  /** Still not known when the wait is over: record `unknown`; a late status webhook still binds it. */
  | { outcome: 'unknown' };

/** The failure a retry throws while an earlier call's outcome is being reconciled. */
export function outcomeUnknown(provider: string, retryInMs?: number): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.ProviderOutcomeUnknown,
    message: `${provider}: the outcome of an earlier send is not known yet`,
    details: [{ provider }],
    ...(retryInMs !== undefined ? { nextRetryDelay: Math.max(1, retryInMs) } : {}),
  });
}

/** Marks a provider call about to start; an earlier call still in doubt keeps its start time. */
export async function beginAttempt(db: Db, messageId: string): Promise<void> {
  await db
    .update(messages)
    .set({ sendAttempts: sql`${messages.sendAttempts} + 1`, sendStartedAt: sql`coalesce(${messages.sendStartedAt}, now())` })
    .where(and(eq(messages.id, messageId), eq(messages.status, 'sending')));
}

/** The provider surely did not take the message: a retry may call it again without asking. */
export async function clearAttempt(db: Db, messageId: string): Promise<void> {
  await db
    .update(messages)
    .set({ sendStartedAt: null })
    .where(and(eq(messages.id, messageId), eq(messages.status, 'sending')));
}

/**
 * Whether a failed provider call may have reached the provider. Every failure after the request
 * was written is a ProviderOutcomeUnknown (providers/http.ts); anything else (the send slot, a
 * refused connection, the provider's own error answer) happened before or instead of taking it.
 */
export function mayHaveReached(err: unknown): boolean {
  return err instanceof ApplicationFailure && err.type === FailureType.ProviderOutcomeUnknown;
}

export interface UnknownSend {
  tenantId: string;
  messageId: string;
  channel: Channel;
  to: string;
  /** The free text, or undefined when a template went out. */
  text?: string;
  startedAt: Date;
}

/** Decides what to do about an earlier call whose outcome is unknown (see the top of this file). */
export async function reconcileSend(deps: { db: Db; keyring: Keyring; providers: Providers }, m: UnknownSend): Promise<Reconciled> {
  const [row] = await deps.db
    .select({ providerMessageId: messages.providerMessageId })
    .from(messages)
    .where(and(eq(messages.tenantId, m.tenantId), eq(messages.id, m.messageId)));
  if (row?.providerMessageId) return { outcome: 'sent', providerMessageId: row.providerMessageId };
  const provider = deps.providers.forChannel(m.channel);
  if (provider.reconcileBy === 'resend') return { outcome: 'resend', mayHaveIt: true };
  if (provider.reconcileBy === 'lookup' && provider.findSent) {
    let candidates: string[];
    try {
      candidates = await provider.findSent({ channel: m.channel, to: m.to, text: m.text, since: m.startedAt });
    } catch (err) {
      // A lookup that fails tells nothing: the send stays unknown and is asked about again.
      const delay = err instanceof ApplicationFailure && err.nextRetryDelay !== undefined ? Number(err.nextRetryDelay) : undefined;
      throw outcomeUnknown(provider.name, Number.isFinite(delay) ? delay : undefined);
    }
    const found = await firstUnbound(deps, m.tenantId, m.messageId, candidates);
    return found ? { outcome: 'sent', providerMessageId: found } : { outcome: 'resend', mayHaveIt: false };
  }
  const waited = Date.now() - m.startedAt.getTime();
  if (waited >= STATUS_CALLBACK_WAIT_MS) return { outcome: 'unknown' };
  // Ask again soon after the call, then less often: a status webhook usually comes in seconds.
  return { outcome: 'waiting', retryInMs: Math.min(Math.max(waited, 1000), 30_000, STATUS_CALLBACK_WAIT_MS - waited) };
}

/** The first candidate no other message of the tenant is recorded with (the same text may have gone out before). */
async function firstUnbound(
  { db, keyring }: { db: Db; keyring: Keyring },
  tenantId: string,
  messageId: string,
  candidates: string[],
): Promise<string | undefined> {
  for (const id of candidates) {
    const [taken] = await db
      .select({ id: messages.id })
      .from(messages)
      .where(
        and(eq(messages.tenantId, tenantId), inArray(messages.providerMessageId, providerIdForms(keyring, id)), ne(messages.id, messageId)),
      )
      .limit(1);
    if (!taken) return id;
  }
  return undefined;
}

/**
 * Reconciliation gave up: the provider may have the message and may not. It is neither resent
 * nor `failed`: `unknown`, until a status webhook that echoes its key says otherwise.
 */
export async function concludeUnknown(db: Db, tenantId: string, messageId: string): Promise<boolean> {
  const updated = await db
    .update(messages)
    .set({
      status: 'unknown',
      deliveryStatus: 'unknown',
      deliveryErrorCode: 'outcome_unknown',
      deliveryUpdatedAt: sql`now()` as unknown as Date,
    })
    .where(and(eq(messages.tenantId, tenantId), eq(messages.id, messageId), eq(messages.status, 'sending')))
    .returning({ id: messages.id });
  return updated.length > 0;
}

/**
 * A status webhook echoed a send key (Meta's `biz_opaque_callback_data`, the `send_key` of a
 * Twilio StatusCallback URL): the outbound message recorded under it went out as this provider
 * message. A key of another tenant binds nothing: the key starts with the tenant's id, and the
 * channel the webhook verified against names the tenant.
 */
export async function bindSendKey(db: Db, keyring: Keyring, tenantId: string, sendKey: string, providerMessageId: string): Promise<void> {
  const prefix = `${tenantId}:`;
  if (!sendKey.startsWith(prefix)) return;
  await db
    .update(messages)
    .set({
      providerMessageId: providerIdHash(keyring, providerMessageId),
      // An `unknown` message the provider took after all is sent.
      status: sql`CASE WHEN ${messages.status} = 'unknown' THEN 'sent' ELSE ${messages.status} END`,
      sentAt: sql`CASE WHEN ${messages.status} = 'unknown' THEN coalesce(${messages.sentAt}, now()) ELSE ${messages.sentAt} END`,
      deliveryErrorCode: sql`CASE WHEN ${messages.status} = 'unknown' THEN NULL ELSE ${messages.deliveryErrorCode} END`,
    })
    .where(
      and(
        eq(messages.tenantId, tenantId),
        eq(messages.dedupeKey, sendKey.slice(prefix.length)),
        eq(messages.direction, 'outbound'),
        isNull(messages.providerMessageId),
      ),
    );
}
