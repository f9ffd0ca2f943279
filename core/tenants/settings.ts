import { eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { tenants, type Tenant } from '../db/schema.js';
import { badRequest, notFound } from '../platform/errors.js';

/**
 * Concurrent provider sends per tenant and process when the tenant has not set
 * `max_concurrent_sends`: at a provider's usual 200-500 ms per call, enough for a campaign at
 * WhatsApp's 80 msg/s, few enough that a tenant whose provider hangs ties up little of a process.
 */
export const DEFAULT_MAX_CONCURRENT_SENDS = 16;
/** The most a tenant may set: its own setting never lifts the cap off. */
export const MAX_CONCURRENT_SENDS_LIMIT = 64;

/**
 * Every key of the tenants.settings JSON. A key is absent until a tenant sets it; readers apply
 * their own default. Adding a setting means adding it here: nothing else reads or writes the JSON.
 */
const fields = {
  debounce_ms: z
    .number()
    .int()
    .min(0)
    .max(60_000)
    .describe('How long a conversation waits for more messages before answering a burst as one turn (0 answers each at once)'),
  legacy_reply_timeout_s: z
    .number()
    .int()
    .min(1)
    .max(24 * 60 * 60)
    .describe('In legacy_n8n mode, how long a conversation waits for n8n before it sends the fallback message'),
  opt_out_keywords: z
    .array(z.string().trim().min(1).max(40).toUpperCase())
    .max(20)
    .describe('Extra keywords that unsubscribe (STOP and UNSUBSCRIBE always do); stored upper-case'),
  opt_out_confirmation: z.string().trim().min(1).max(1024).describe('Sent when a customer opts out'),
  opt_in_confirmation: z.string().trim().min(1).max(1024).describe('Sent when a customer opts back in with START'),
  max_concurrent_sends: z
    .number()
    .int()
    .min(1)
    .max(MAX_CONCURRENT_SENDS_LIMIT)
    .describe(
      `How many of the tenant's messages one API or worker process hands to the provider at a time (default ${DEFAULT_MAX_CONCURRENT_SENDS}); more wait`,
    ),
};

/** What a write may contain: known keys only, each valid. */
export const tenantSettingsSchema = z.object(fields).partial().strict();
export type TenantSettings = z.infer<typeof tenantSettingsSchema>;
type TenantSettingKey = keyof typeof fields;

const stored = z.object(fields).partial();

/**
 * The settings of a tenant row. A stored value the schema no longer accepts is left out (its
 * reader's default applies) rather than failing every conversation of the tenant.
 */
export function readSettings(row: Pick<Tenant, 'settings'>): TenantSettings {
  const whole = stored.safeParse(row.settings);
  if (whole.success) return whole.data;
  const kept: Record<string, unknown> = {};
  for (const key of Object.keys(fields) as TenantSettingKey[]) {
    const one = fields[key].safeParse(row.settings[key]);
    if (one.success) kept[key] = one.data;
  }
  return kept as TenantSettings;
}

/** Tenant columns a settings change may carry in the same statement. */
export type TenantColumnsPatch = Partial<Pick<Tenant, 'fallbackMessage' | 'mode'>>;

/**
 * Merges `patch` into the tenant's settings (keys not named keep their value) and sets
 * `columns`, in one statement. Returns the updated row.
 */
export async function patchSettings(db: Db, tenantId: string, patch: TenantSettings, columns: TenantColumnsPatch = {}): Promise<Tenant> {
  const parsed = tenantSettingsSchema.safeParse(patch);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest('VALIDATION_FAILED', `${['settings', ...issue.path].join('.')}: ${issue.message}`);
  }
  const changed = Object.entries(parsed.data).filter(([, value]) => value !== undefined);
  const [row] = await db
    .update(tenants)
    .set({
      ...columns,
      ...(changed.length > 0 ? { settings: sql`${tenants.settings} || ${JSON.stringify(Object.fromEntries(changed))}::jsonb` } : {}),
      updatedAt: sql`now()`,
    })
    .where(eq(tenants.id, tenantId))
    .returning();
  if (!row) throw notFound('TENANT_NOT_FOUND', `tenant_id: no tenant "${tenantId}"`);
  return row;
}

/** The tenant's cap on concurrent provider sends (core/messaging/send-cap.ts); the default for an unknown tenant. */
export async function maxConcurrentSends(db: Db, tenantId: string): Promise<number> {
  const [row] = await db.select({ settings: tenants.settings }).from(tenants).where(eq(tenants.id, tenantId));
  return (row && readSettings(row).max_concurrent_sends) ?? DEFAULT_MAX_CONCURRENT_SENDS;
}
