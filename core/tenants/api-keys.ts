import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys } from '../db/schema.js';
import { randomToken, sha256 } from '../platform/crypto.js';

/** `data_worker`: a tenant's own data worker pulls and answers that tenant's lookups, and nothing else. `events`: webhook endpoints and their deliveries. */
export const SCOPES = ['admin', 'messages', 'queue', 'read', 'data_worker', 'events'] as const;
export type Scope = (typeof SCOPES)[number];

export interface IssuedKey {
  id: string;
  key: string;
  prefix: string;
  scopes: Scope[];
}

/** Keys are random, shown once, and stored as a SHA-256 hash (they carry 192 bits of entropy). */
export async function issueApiKey(db: Db, tenantId: string, name: string, scopes: Scope[]): Promise<IssuedKey> {
  const key = `prl_${randomToken(24)}`;
  const prefix = key.slice(0, 12);
  const [row] = await db
    .insert(apiKeys)
    .values({ tenantId, name, prefix, keyHash: sha256(key), scopes })
    .returning({ id: apiKeys.id });
  return { id: row.id, key, prefix, scopes };
}

export interface KeyPrincipal {
  keyId: string;
  tenantId: string;
  scopes: Scope[];
}

/** Looks a key up on every request, so a revoked key fails at once on every replica. */
export async function findActiveKey(db: Db, key: string): Promise<KeyPrincipal | null> {
  const [row] = await db
    .select({ id: apiKeys.id, tenantId: apiKeys.tenantId, scopes: apiKeys.scopes, lastUsedAt: apiKeys.lastUsedAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, sha256(key)), isNull(apiKeys.revokedAt)));
  if (!row) return null;
  // Recording every use would turn each read into a write; minute precision is enough.
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
    await db
      .update(apiKeys)
      .set({ lastUsedAt: sql`now()` })
      .where(eq(apiKeys.id, row.id));
  }
  return { keyId: row.id, tenantId: row.tenantId, scopes: row.scopes as Scope[] };
}

/** A tenant's live keys: the prefix identifies a key, the key itself is never stored. */
export async function listApiKeys(db: Db, tenantId: string) {
  return db
    .select({
      id: apiKeys.id,
      prefix: apiKeys.prefix,
      name: apiKeys.name,
      scopes: apiKeys.scopes,
      createdAt: apiKeys.createdAt,
      lastUsedAt: apiKeys.lastUsedAt,
    })
    .from(apiKeys)
    .where(and(eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt)))
    .orderBy(apiKeys.createdAt);
}

/** Revokes at once: every request looks its key up, so no replica keeps accepting it. */
export async function revokeApiKey(db: Db, tenantId: string, id: string): Promise<boolean> {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}
