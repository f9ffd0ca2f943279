import { and, eq } from 'drizzle-orm';
import type { Keyring } from '../platform/crypto.js';
import type { Db } from '../db/client.js';
import { contacts } from '../db/schema.js';

/** A tenant's contact by phone number, through the keyed hash (the number itself is never queried). */
export async function findContactIdByPhone(db: Db, keyring: Keyring, tenantId: string, phone: string): Promise<string | undefined> {
  const [row] = await db
    .select({ id: contacts.id })
    .from(contacts)
    .where(and(eq(contacts.tenantId, tenantId), eq(contacts.phoneHash, keyring.blindIndex(phone))));
  return row?.id;
}
