import { and, eq, sql } from 'drizzle-orm';
import { inTransaction, type Db } from '../db/client.js';
import { messages, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import type { OutboundText, Providers } from '../providers/index.js';
import { withSendSlot, type PacingOptions } from '../providers/pacing.js';
import { maxConcurrentSends } from '../tenants/settings.js';
import { emitEvent } from '../events/emit.js';
import { applyDeliveryStatus } from './delivery-status.js';
import { providerIdHash } from './provider-ids.js';
import { SERVICE_WINDOW_MS } from './delivery-policy.js';
import { sendCapThrottled, tenantSendCap } from './send-cap.js';

/*
 * The one way a message leaves Parley: conversation replies, real-provider deliveries, the
 * legacy `POST /messages/send` and campaign sends all take the same steps.
 *   1. recordOutbound: the message is recorded under its idempotency key; a repeat finds the first record.
 *   2. checkWindow: inside WhatsApp's 24-hour customer-service window free text goes out;
 *      outside it only the channel's reopen template, and without one nothing does.
 *   3. + 4. callProvider: one of the tenant's concurrent-send slots (send-cap.ts), the number's
 *      send slot (providers/pacing.ts; not for the sandbox, which stands for no real number), then
 *      the provider call. Never inside a database transaction (callProvider refuses): a slow
 *      provider would hold row locks and a connection, and a rollback would forget a sent message.
 *   5. markOutboundSent: the record becomes `sent` and the messages it answers `answered`.
 * Campaign sends keep their record in `campaign_sends` (one row per run and contact) and
 * share steps 2 to 4.
 */

export const DEFAULT_PACING: PacingOptions = { maxWaitMs: 20_000, toleranceMs: 20 };

export interface OutboundDeps {
  db: Db;
  keyring: Keyring;
  providers: Providers;
  pacing?: Partial<PacingOptions>;
}

export interface WindowTemplate {
  name: string;
  language: string;
  parameters?: string[];
}

/** How a message may go out now: its text, the template that reopens the window, or not at all. */
export type WindowDecision = { via: 'text' } | { via: 'template'; template: WindowTemplate } | { via: 'closed' };

/** Step 2: the 24-hour window since the customer's last message. */
export function checkWindow(lastInboundAt: Date | string | null, template: WindowTemplate | null | undefined): WindowDecision {
  const open = lastInboundAt !== null && Date.now() - new Date(lastInboundAt).getTime() < SERVICE_WINDOW_MS;
  if (open) return { via: 'text' };
  return template ? { via: 'template', template } : { via: 'closed' };
}

export interface OutboundRecord {
  tenantId: string;
  conversationId: string;
  /** The idempotency key: a reply key, a job's reply key, or a fresh key for an unprompted send. */
  dedupeKey: string;
  text: string;
  inReplyTo: string[];
  replySource: string;
  sourceChunkIds?: string[];
}

export interface RecordedOutbound {
  id: string;
  status: string;
  sentAt: Date | null;
}

/** Step 1. `db` may be a transaction, so the record commits together with what it answers. */
export async function recordOutbound(db: Db, keyring: Keyring, r: OutboundRecord): Promise<RecordedOutbound> {
  const [inserted] = await db
    .insert(messages)
    .values({
      tenantId: r.tenantId,
      conversationId: r.conversationId,
      direction: 'outbound',
      dedupeKey: r.dedupeKey,
      bodyEnc: keyring.encrypt(r.text, { tenantId: r.tenantId, column: messages.bodyEnc }),
      status: 'sending',
      inReplyTo: r.inReplyTo,
      replySource: r.replySource,
      sourceChunkIds: r.sourceChunkIds?.length ? r.sourceChunkIds : null,
    })
    .onConflictDoNothing({ target: [messages.tenantId, messages.dedupeKey] })
    .returning({ id: messages.id, status: messages.status, sentAt: messages.sentAt });
  if (inserted) return inserted;
  // Only a retried or replayed send finds its key taken.
  const [first] = await db
    .select({ id: messages.id, status: messages.status, sentAt: messages.sentAt })
    .from(messages)
    .where(and(eq(messages.tenantId, r.tenantId), eq(messages.dedupeKey, r.dedupeKey)));
  return first;
}

/** The provider-side idempotency key of a recorded message. */
export const outboundKey = (tenantId: string, dedupeKey: string) => `${tenantId}:${dedupeKey}`;

/** A provider send of a recorded message; `text` is the free text, or with a template the body its parameters fill in. */
export type ProviderSend = Omit<OutboundText, 'template'> & { window: Exclude<WindowDecision, { via: 'closed' }> };

/** The sandbox stands in for no WhatsApp number: it has no rate to keep and sends no status callbacks. */
const isSandbox = (channel: Channel) => channel.provider === 'sandbox';

/** A programming error, not a send failure: the provider call was made inside `db.transaction`. */
export class ProviderCallInTransaction extends Error {
  readonly code = 'PROVIDER_CALL_IN_TRANSACTION';
  constructor() {
    super('a provider call must not run inside a database transaction; commit first, then send');
    this.name = 'ProviderCallInTransaction';
  }
}

/**
 * Steps 3 and 4: takes one of the tenant's send slots (a caller already holding one, the
 * legacy send, keeps it), waits for the number's send slot, then calls the provider. Provider
 * failures, and a tenant at its cap (throttled), propagate as thrown ApplicationFailures with
 * the shared failure types; each caller decides what a failure means for its record.
 * `beforeCall` runs once both slots are taken, right before the request (it marks the call, see
 * reconcile.ts): a crash while waiting for a slot leaves no mark.
 */
export async function callProvider(
  deps: OutboundDeps,
  send: ProviderSend,
  beforeCall?: () => Promise<void>,
): Promise<{ providerMessageId: string }> {
  if (inTransaction()) throw new ProviderCallInTransaction();
  // The sandbox is a local insert, not a provider that can be slow: a reply to it takes no slot.
  if (tenantSendCap.holds(send.tenantId) || isSandbox(send.channel)) return callInSlot(deps, send, beforeCall);
  const limit = await maxConcurrentSends(deps.db, send.tenantId);
  const outcome = await tenantSendCap.run(send.tenantId, limit, () => callInSlot(deps, send, beforeCall));
  if (outcome.capped) throw sendCapThrottled(limit);
  return outcome.value;
}

async function callInSlot(
  deps: OutboundDeps,
  send: ProviderSend,
  beforeCall?: () => Promise<void>,
): Promise<{ providerMessageId: string }> {
  const provider = deps.providers.forChannel(send.channel);
  const base = {
    tenantId: send.tenantId,
    channel: send.channel,
    to: send.to,
    idempotencyKey: send.idempotencyKey,
    inReplyTo: send.inReplyTo,
  };
  const go = async () => {
    await beforeCall?.();
    if (send.window.via === 'text') return provider.sendText({ ...base, text: send.text });
    const { template } = send.window;
    // A provider without native templates (the sandbox) records the template's name with the text.
    return provider.sendTemplate ? provider.sendTemplate({ ...base, template }) : provider.sendText({ ...base, text: send.text, template });
  };
  if (isSandbox(send.channel)) return go();
  return withSendSlot(deps.db, send.channel.id, send.channel.ratePerSecond, { ...DEFAULT_PACING, ...deps.pacing }, go);
}

export interface SentOutbound {
  /** `failed` when a status callback that beat the send's response already reported a failure. */
  status: 'sent' | 'failed';
  sentAt: Date;
  via: 'text' | 'template';
  providerMessageId: string;
}

/**
 * Step 5: the record and the messages it answers, in one statement. A template send is noted
 * in the reply source. A record no longer `sending` keeps its state.
 */
export async function markOutboundSent(
  { db, keyring }: Pick<OutboundDeps, 'db' | 'keyring'>,
  m: { tenantId: string; messageId: string; channel: Channel; inReplyTo: string[]; via: 'text' | 'template'; providerMessageId: string },
): Promise<SentOutbound> {
  const source = m.via === 'template' ? sql`coalesce(reply_source, '') || ':template'` : sql`reply_source`;
  const { rows } = await db.execute<{ sent_at: Date }>(sql`
    WITH answered AS (
      UPDATE ${messages} SET status = 'answered'
       WHERE tenant_id = ${m.tenantId} AND id = ANY(${sql.param(m.inReplyTo)}::uuid[])
    )
    UPDATE ${messages} SET status = 'sent', provider_message_id = coalesce(provider_message_id, ${providerIdHash(keyring, m.providerMessageId)}), sent_at = now(), reply_source = ${source}
     WHERE id = ${m.messageId} AND status = 'sending'
    RETURNING sent_at`);
  const sentAt = rows[0] ? new Date(rows[0].sent_at) : new Date();
  // Also when a retried call finds the record already sent: the event id makes it once.
  await emitEvent(db, { tenantId: m.tenantId, type: 'message.sent', key: m.messageId, messageId: m.messageId, data: { via: m.via } });
  const sent: SentOutbound = { status: 'sent', sentAt, via: m.via, providerMessageId: m.providerMessageId };
  if (isSandbox(m.channel)) return sent;
  // A status callback may have beaten this response: fold in whatever already arrived.
  await applyDeliveryStatus(db, keyring, m.tenantId, m.providerMessageId);
  const [final] = await db.select({ status: messages.status }).from(messages).where(eq(messages.id, m.messageId));
  return { ...sent, status: final?.status === 'failed' ? 'failed' : 'sent' };
}

/**
 * Step 5 when nothing came of the send (the last attempt timed out): a record still `sending` is
 * a failed delivery, unless a provider call may have reached the provider (its mark is still
 * set, see reconcile.ts): then it is `unknown`, since it may have been delivered.
 */
export async function markOutboundFailed(db: Db, tenantId: string, messageId: string): Promise<void> {
  await db.execute(sql`
    UPDATE messages
       SET status = CASE WHEN send_started_at IS NULL THEN 'failed' ELSE 'unknown' END,
           delivery_status = CASE WHEN send_started_at IS NULL THEN 'failed' ELSE 'unknown' END,
           delivery_error_code = CASE WHEN send_started_at IS NULL THEN 'send_failed' ELSE 'outcome_unknown' END,
           delivery_updated_at = now()
     WHERE tenant_id = ${tenantId} AND id = ${messageId} AND status = 'sending'`);
}

/** Steps 3 to 5 for a recorded message the window lets out. */
export async function sendRecorded(deps: OutboundDeps, m: ProviderSend & { messageId: string }): Promise<SentOutbound> {
  const { providerMessageId } = await callProvider(deps, m);
  return markOutboundSent(deps, {
    tenantId: m.tenantId,
    messageId: m.messageId,
    channel: m.channel,
    inReplyTo: m.inReplyTo,
    via: m.window.via,
    providerMessageId,
  });
}
