import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { consentEvents, contacts } from '../db/schema.js';
import { emitEvent } from '../events/emit.js';

export interface ConsentChange {
  optedIn: boolean;
  /** Where the decision came from: "web-form", "whatsapp:STOP", "import", … */
  source: string;
  at?: Date;
}

/**
 * Records an opt-in or opt-out: the contact row holds the latest decision (which every
 * campaign query reads, so a revocation applies to the next send), consent_events the history.
 * Returns false when the tenant has no such contact.
 */
export async function recordConsent(db: Db, tenantId: string, contactId: string, change: ConsentChange): Promise<boolean> {
  const at = change.at ?? new Date();
  return db.transaction(async (tx) => {
    const updated = await tx
      .update(contacts)
      .set({ optedIn: change.optedIn, consentAt: at, consentSource: change.source, updatedAt: sql`now()` })
      .where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)))
      .returning({ id: contacts.id });
    if (updated.length === 0) return false;
    const [consent] = await tx
      .insert(consentEvents)
      .values({ tenantId, contactId, optedIn: change.optedIn, source: change.source, at })
      .returning({ id: consentEvents.id });
    const type = change.optedIn ? 'contact.opted_in' : 'contact.opted_out';
    await emitEvent(tx, { tenantId, type, key: String(consent.id), contactId, data: { source: change.source } });
    return true;
  });
}
