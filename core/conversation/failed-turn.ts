import { eq } from 'drizzle-orm';
import type { FailedTurn, FailTurnInput } from '../../contracts/conversation.js';
import { failedTurns, tenants } from '../db/schema.js';
import type { OutboundDeps } from '../messaging/outbound.js';
import { AppError } from '../platform/errors.js';
import { sendReply } from './reply.js';

/**
 * A turn whose planning kept failing (a query its text breaks, a bug) is recorded, once per reply
 * key, as the alert `GET /` counts, and answered with the tenant's fallback under the turn's own
 * reply key: a reply the failed attempts already recorded is the one sent, never a second.
 */
export async function failTurn(deps: OutboundDeps, input: FailTurnInput): Promise<FailedTurn> {
  const { db } = deps;
  const { reply } = input;
  await db
    .insert(failedTurns)
    .values({
      replyKey: reply.replyKey,
      tenantId: reply.tenantId,
      conversationId: reply.conversationId,
      messages: reply.inReplyTo.length,
      failureType: input.failureType.slice(0, 100),
    })
    .onConflictDoNothing();
  const [tenant] = await db.select({ fallback: tenants.fallbackMessage }).from(tenants).where(eq(tenants.id, reply.tenantId));
  if (!tenant) return null;
  try {
    const sent = await sendReply(deps, { ...reply, text: tenant.fallback, source: 'fallback' });
    return { text: tenant.fallback, sent };
  } catch (err) {
    // The channel or contact is gone: nobody is left to answer.
    if (err instanceof AppError && err.status === 404) return null;
    throw err;
  }
}
