import { and, arrayContains, asc, eq, gt, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { contacts, type Contact } from '../db/schema.js';
import { recordConsent } from '../privacy/consent.js';
import type { Keyring } from '../platform/crypto.js';
import type { TenantSettings } from '../tenants/settings.js';

export interface ContactInput {
  phone: string;
  name?: string;
  tags?: string[];
  attributes?: Record<string, unknown>;
  opted_in: boolean;
  consent_at?: string;
  consent_source?: string;
}

/** Consent given or withdrawn by the customer's own message; a bulk import cannot override a withdrawal. */
export const KEYWORD_CONSENT_SOURCE = 'inbound_keyword';

/**
 * Bulk upsert keyed by the phone's blind index. Omitted fields keep their stored value; consent
 * time and source (given, or now / "api") are recorded only when consent changes. A customer who opted out by
 * keyword stays opted out whatever an import says: only the customer's START opts back in.
 */
export async function upsertContacts(db: Db, keyring: Keyring, tenantId: string, input: ContactInput[]): Promise<number> {
  // The last entry for a phone wins; one statement cannot update the same row twice.
  const byPhone = new Map(input.map((c) => [c.phone, c]));
  const all = [...byPhone.values()];
  const keepWithdrawal = sql`(${contacts.optedIn} IS FALSE AND ${contacts.consentSource} = ${KEYWORD_CONSENT_SOURCE})`;
  const consentUnchanged = sql`(${keepWithdrawal} OR ${contacts.optedIn} IS NOT DISTINCT FROM excluded.opted_in)`;
  let upserted = 0;
  await db.transaction(async (tx) => {
    // Contacts given with tags replace their tags; those without keep theirs (excluded.tags cannot tell [] from omitted).
    for (const withTags of [true, false]) {
      const group = all.filter((c) => (c.tags !== undefined) === withTags);
      if (group.length === 0) continue;
      const result = await tx
        .insert(contacts)
        .values(
          group.map((c) => ({
            tenantId,
            phoneHash: keyring.blindIndex(c.phone),
            phoneEnc: keyring.encrypt(c.phone, { tenantId, column: contacts.phoneEnc }),
            nameEnc: c.name !== undefined ? keyring.encrypt(c.name, { tenantId, column: contacts.nameEnc }) : null,
            tags: c.tags ?? [],
            attributesEnc:
              c.attributes !== undefined
                ? keyring.encrypt(JSON.stringify(c.attributes), { tenantId, column: contacts.attributesEnc })
                : null,
            optedIn: c.opted_in,
            consentAt: c.consent_at ? new Date(c.consent_at) : new Date(),
            consentSource: c.consent_source ?? 'api',
          })),
        )
        .onConflictDoUpdate({
          target: [contacts.tenantId, contacts.phoneHash],
          set: {
            nameEnc: sql`coalesce(excluded.name_enc, ${contacts.nameEnc})`,
            attributesEnc: sql`coalesce(excluded.attributes_enc, ${contacts.attributesEnc})`,
            ...(withTags ? { tags: sql`excluded.tags` } : {}),
            optedIn: sql`CASE WHEN ${keepWithdrawal} THEN false ELSE excluded.opted_in END`,
            consentAt: sql`CASE WHEN ${consentUnchanged} THEN ${contacts.consentAt} ELSE excluded.consent_at END`,
            consentSource: sql`CASE WHEN ${consentUnchanged} THEN ${contacts.consentSource} ELSE excluded.consent_source END`,
            updatedAt: sql`now()`,
          },
        })
        .returning({ id: contacts.id });
      upserted += result.length;
    }
  });
  return upserted;
}

export interface ContactView {
  id: string;
  phone: string;
  name: string | null;
  tags: string[];
  attributes: Record<string, unknown>;
  opted_in: boolean | null;
  consent_at: string | null;
  consent_source: string | null;
  created_at: string;
  updated_at: string;
}

export function viewContact(keyring: Keyring, c: Contact): ContactView {
  return {
    id: c.id,
    phone: keyring.decrypt(c.phoneEnc, { tenantId: c.tenantId, column: contacts.phoneEnc }),
    name: c.nameEnc ? keyring.decrypt(c.nameEnc, { tenantId: c.tenantId, column: contacts.nameEnc }) : null,
    tags: c.tags,
    attributes: decryptAttributes(keyring, c.tenantId, c.attributesEnc),
    opted_in: c.optedIn,
    consent_at: c.consentAt?.toISOString() ?? null,
    consent_source: c.consentSource,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

export function decryptAttributes(keyring: Keyring, tenantId: string, sealed: string | null): Record<string, unknown> {
  return sealed ? (JSON.parse(keyring.decrypt(sealed, { tenantId, column: contacts.attributesEnc })) as Record<string, unknown>) : {};
}

/** Keyset pagination in id order; `phone` is an exact look-up through the blind index. */
export async function listContacts(
  db: Db,
  keyring: Keyring,
  tenantId: string,
  q: { tag?: string; opted_in?: boolean; phone?: string; cursor?: string; limit: number },
): Promise<{ contacts: ContactView[]; next_cursor: string | null }> {
  const rows = await db
    .select()
    .from(contacts)
    .where(
      and(
        eq(contacts.tenantId, tenantId),
        q.tag !== undefined ? arrayContains(contacts.tags, [q.tag]) : undefined,
        q.opted_in === true ? eq(contacts.optedIn, true) : undefined,
        q.opted_in === false ? sql`${contacts.optedIn} IS NOT TRUE` : undefined,
        q.phone !== undefined ? eq(contacts.phoneHash, keyring.blindIndex(q.phone)) : undefined,
        q.cursor !== undefined ? gt(contacts.id, q.cursor) : undefined,
      ),
    )
    .orderBy(asc(contacts.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { contacts: page.map((c) => viewContact(keyring, c)), next_cursor: rows.length > q.limit ? page[page.length - 1].id : null };
}

export const DEFAULT_OPT_OUT_KEYWORDS = ['STOP', 'UNSUBSCRIBE'];
export const DEFAULT_OPT_IN_KEYWORDS = ['START'];
export const DEFAULT_OPT_OUT_CONFIRMATION = "You're unsubscribed and won't get any more messages from us. Reply START to subscribe again.";
export const DEFAULT_OPT_IN_CONFIRMATION = "You're subscribed again. Reply STOP at any time to unsubscribe.";

const TRAILING = /[\s.!]/u;

/**
 * Trimmed, without trailing spaces, dots and exclamation marks, upper case. A loop rather than
 * `/[\s.!]+$/`, which backtracks quadratically over a long run of such characters mid-message.
 */
function normalise(text: string): string {
  const trimmed = text.trim();
  let end = trimmed.length;
  while (end > 0 && TRAILING.test(trimmed[end - 1])) end--;
  return trimmed.slice(0, end).toUpperCase();
}

export type ConsentChange = { optedIn: boolean; confirmation: string };

/**
 * When any message of a turn is exactly a consent keyword (case and trailing punctuation
 * ignored), flips the contact's consent at once and returns the confirmation to send.
 * Campaign sends check consent per contact at send time, so this also stops a run in progress.
 */
export async function applyConsentKeyword(
  db: Db,
  input: { tenantId: string; contactId: string | null; settings: TenantSettings; texts: string[] },
): Promise<ConsentChange | null> {
  const { settings } = input;
  const stopWords = new Set([...DEFAULT_OPT_OUT_KEYWORDS, ...(settings.opt_out_keywords ?? [])].map(normalise));
  const said = input.texts.map(normalise);
  const optedIn = said.some((t) => stopWords.has(t)) ? false : said.some((t) => DEFAULT_OPT_IN_KEYWORDS.includes(t)) ? true : null;
  if (optedIn === null) return null;
  // Through the consent history, so an export shows when and how the customer said it.
  if (input.contactId) await recordConsent(db, input.tenantId, input.contactId, { optedIn, source: KEYWORD_CONSENT_SOURCE });
  return {
    optedIn,
    confirmation: optedIn
      ? (settings.opt_in_confirmation ?? DEFAULT_OPT_IN_CONFIRMATION)
      : (settings.opt_out_confirmation ?? DEFAULT_OPT_OUT_CONFIRMATION),
  };
}
