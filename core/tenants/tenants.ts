import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { channels, tenants, type Tenant } from '../db/schema.js';
import { conflict } from '../platform/errors.js';
import { issueApiKey, SCOPES, type IssuedKey } from './api-keys.js';

export const DEFAULT_FALLBACK =
  "Thanks for your message! We couldn't find an answer right away; a member of our team will get back to you soon.";

export async function createTenant(
  db: Db,
  input: { id: string; name: string; fallback_message?: string },
): Promise<{ tenant: Tenant; key: IssuedKey }> {
  return db.transaction(async (tx) => {
    const inserted = await tx
      .insert(tenants)
      .values({ id: input.id, name: input.name, fallbackMessage: input.fallback_message ?? DEFAULT_FALLBACK })
      .onConflictDoNothing({ target: tenants.id })
      .returning();
    if (!inserted[0]) throw conflict('TENANT_EXISTS', `id: a tenant "${input.id}" already exists`);
    // Every tenant starts on the sandbox provider so it can be tried before any WhatsApp setup.
    await tx.insert(channels).values({ tenantId: input.id, provider: 'sandbox', isDefault: true });
    const key = await issueApiKey(tx as unknown as Db, input.id, 'initial', [...SCOPES]);
    return { tenant: inserted[0], key };
  });
}

export async function findTenant(db: Db, id: string): Promise<Tenant | undefined> {
  const [row] = await db.select().from(tenants).where(eq(tenants.id, id));
  return row;
}
