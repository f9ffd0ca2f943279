import { and, asc, eq, inArray } from 'drizzle-orm';
import type { LegacyJobPlan, PlanTurnInput } from '../../contracts/conversation.js';
import type { Db } from '../db/client.js';
import { contacts, conversations, messages } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { notFound } from '../platform/errors.js';
import { listIntents, matchIntent } from '../data-engine/store.js';
import { readSettings } from '../tenants/settings.js';
import { DEFAULT_LEGACY_REPLY_TIMEOUT_S, enqueueTurnJob, type MessageJobPayload } from './jobs.js';

/**
 * A turn of a tenant in `legacy_n8n` mode: written as a job in the seed's payload shape, a
 * `data_lookup` job when one of the tenant's intents recognises it (n8n does the lookup), else
 * a `message` job. Either way n8n answers through /messages/send + job_id.
 */
export async function planLegacyTurn(
  { db, keyring }: { db: Db; keyring: Keyring },
  input: PlanTurnInput,
  tenant: { fallback: string; settings: Record<string, unknown> },
): Promise<LegacyJobPlan> {
  const [conversation] = await db
    .select({ workflowId: conversations.workflowId, phoneEnc: contacts.phoneEnc })
    .from(conversations)
    .innerJoin(contacts, eq(contacts.id, conversations.contactId))
    .where(and(eq(conversations.id, input.conversationId), eq(conversations.tenantId, input.tenantId)));
  if (!conversation) throw notFound('CONVERSATION_NOT_FOUND', 'conversation no longer exists');
  const ids = input.messages.map((m) => m.id);
  const [first] = await db
    .select({ receivedAt: messages.createdAt })
    .from(messages)
    .where(and(eq(messages.tenantId, input.tenantId), inArray(messages.id, ids)))
    .orderBy(asc(messages.seq))
    .limit(1);
  const message: MessageJobPayload = {
    from: keyring.decrypt(conversation.phoneEnc, { tenantId: input.tenantId, column: contacts.phoneEnc }),
    message: input.messages.map((m) => m.text).join('\n'),
    tenant_id: input.tenantId,
    timestamp: (first?.receivedAt ?? new Date()).toISOString(),
  };
  // A retried planTurn matches the same intents, but the reply key keeps the first job whatever it was.
  const match = matchIntent(await listIntents(db, input.tenantId), message.message, message.from);
  const jobId = await enqueueTurnJob(db, keyring, {
    tenantId: input.tenantId,
    conversationId: input.conversationId,
    workflowId: conversation.workflowId,
    replyKey: `reply:${ids[0]}`,
    messageIds: ids,
    payload: match
      ? {
          job_type: 'data_lookup',
          tenant_id: input.tenantId,
          query: match.intent.query,
          parameters: match.params,
          data_source: match.intent.dataSourceId,
          from: message.from,
          message: message.message,
          timestamp: message.timestamp,
        }
      : message,
  });
  const timeoutS = readSettings(tenant).legacy_reply_timeout_s ?? DEFAULT_LEGACY_REPLY_TIMEOUT_S;
  return { kind: 'legacy_job', jobId, timeoutMs: timeoutS * 1000, fallbackText: tenant.fallback };
}
