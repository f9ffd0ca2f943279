import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { aiProfiles, contacts, conversations, dataIntents, tenants } from '../db/schema.js';

/**
 * Everything turn planning reads about the tenant and the conversation, in one query: each
 * capability used to make its own look-up, six round trips per turn.
 */
export async function loadTurnContext(db: Db, tenantId: string, conversationId: string) {
  const [row] = await db
    .select({
      fallback: tenants.fallbackMessage,
      mode: tenants.mode,
      settings: tenants.settings,
      contactId: conversations.contactId,
      phoneEnc: contacts.phoneEnc,
      needsHuman: sql<boolean>`coalesce(${conversations.needsHuman}, false)`,
      hasAiProfile: sql<boolean>`${aiProfiles.tenantId} IS NOT NULL`,
      monthlyTokenBudget: aiProfiles.monthlyTokenBudget,
      hasIntents: sql<boolean>`EXISTS (SELECT 1 FROM ${dataIntents} WHERE ${dataIntents.tenantId} = ${tenants.id})`,
    })
    .from(tenants)
    .leftJoin(conversations, and(eq(conversations.id, conversationId), eq(conversations.tenantId, tenants.id)))
    .leftJoin(contacts, eq(contacts.id, conversations.contactId))
    .leftJoin(aiProfiles, eq(aiProfiles.tenantId, tenants.id))
    .where(eq(tenants.id, tenantId));
  return row;
}
