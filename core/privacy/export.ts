import { and, asc, eq, inArray, or, sql } from 'drizzle-orm';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { campaignSends, consentEvents, contacts, conversations, jobs, messages, sandboxMessages } from '../db/schema.js';
import { openPayload } from '../legacy-queue/jobs.js';

/**
 * Everything Parley holds about one contact, decrypted (data portability). Returns undefined
 * when the tenant has no such contact, which is also the answer once it has been erased.
 */
export async function exportContact(db: Db, keyring: Keyring, tenantId: string, contactId: string) {
  const [contact] = await db
    .select()
    .from(contacts)
    .where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)));
  if (!contact) return undefined;

  const convs = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.contactId, contactId)))
    .orderBy(asc(conversations.createdAt));
  const convIds = convs.map((c) => c.id);
  const msgs = convIds.length
    ? await db
        .select()
        .from(messages)
        .where(and(eq(messages.tenantId, tenantId), inArray(messages.conversationId, convIds)))
        .orderBy(asc(messages.seq))
    : [];
  const [consent, sandbox, jobRows, sends] = await Promise.all([
    db
      .select()
      .from(consentEvents)
      .where(and(eq(consentEvents.tenantId, tenantId), eq(consentEvents.contactId, contactId)))
      .orderBy(asc(consentEvents.at)),
    db
      .select()
      .from(sandboxMessages)
      .where(and(eq(sandboxMessages.tenantId, tenantId), eq(sandboxMessages.toHash, contact.phoneHash)))
      .orderBy(asc(sandboxMessages.sentAt)),
    db
      .select()
      .from(jobs)
      .where(
        and(
          eq(jobs.tenantId, tenantId),
          contactJobs(contactId, convIds, keyring.decrypt(contact.phoneEnc, { tenantId, column: contacts.phoneEnc })),
        ),
      )
      .orderBy(asc(jobs.createdAt)),
    db
      .select()
      .from(campaignSends)
      .where(and(eq(campaignSends.tenantId, tenantId), eq(campaignSends.contactId, contactId)))
      .orderBy(asc(campaignSends.createdAt)),
  ]);

  return {
    contact: {
      id: contact.id,
      phone: keyring.decrypt(contact.phoneEnc, { tenantId, column: contacts.phoneEnc }),
      name: contact.nameEnc ? keyring.decrypt(contact.nameEnc, { tenantId, column: contacts.nameEnc }) : null,
      tags: contact.tags,
      attributes: contact.attributesEnc
        ? (JSON.parse(keyring.decrypt(contact.attributesEnc, { tenantId, column: contacts.attributesEnc })) as unknown)
        : null,
      opted_in: contact.optedIn,
      consent_at: contact.consentAt?.toISOString() ?? null,
      consent_source: contact.consentSource,
      created_at: contact.createdAt.toISOString(),
      updated_at: contact.updatedAt.toISOString(),
    },
    consent_history: consent.map((e) => ({ opted_in: e.optedIn, source: e.source, at: e.at.toISOString() })),
    conversations: convs.map((c) => ({
      id: c.id,
      channel_id: c.channelId,
      status: c.status,
      created_at: c.createdAt.toISOString(),
      last_inbound_at: c.lastInboundAt?.toISOString() ?? null,
      messages: msgs
        .filter((m) => m.conversationId === c.id)
        .map((m) => ({
          id: m.id,
          direction: m.direction,
          text: keyring.decrypt(m.bodyEnc, { tenantId, column: messages.bodyEnc }),
          status: m.status,
          created_at: m.createdAt.toISOString(),
          sent_at: m.sentAt?.toISOString() ?? null,
        })),
    })),
    sandbox_messages: sandbox.map((s) => ({
      id: s.id,
      text: keyring.decrypt(s.textEnc, { tenantId, column: sandboxMessages.textEnc }),
      sent_at: s.sentAt.toISOString(),
    })),
    jobs: jobRows.map((j) => ({ id: j.id, status: j.status, payload: openPayload(keyring, j), created_at: j.createdAt.toISOString() })),
    campaign_sends: sends.map((c) => ({
      run_id: c.runId,
      status: c.status,
      template_name: c.templateName,
      created_at: c.createdAt.toISOString(),
      sent_at: c.sentAt?.toISOString() ?? null,
    })),
    exported_at: new Date().toISOString(),
  };
}

/**
 * A contact's legacy n8n jobs: those of their conversations, and rows in the seed's shape (no
 * conversation column, the sender's number in the clear payload) that name them.
 */
export function contactJobs(contactId: string, conversationIds: string[], phone: string) {
  return or(
    conversationIds.length ? inArray(jobs.conversationId, conversationIds) : undefined,
    jobsMentioning([contactId, ...conversationIds, phone]),
  );
}

function jobsMentioning(needles: string[]) {
  const patterns = needles.map((n) => `%${n.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  return sql`${jobs.payload}::text LIKE ANY (ARRAY[${sql.join(
    patterns.map((p) => sql`${p}`),
    sql`, `,
  )}]::text[])`;
}
