import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { channels, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { conflict } from '../platform/errors.js';
import { assertEgressAllowed } from '../platform/egress.js';

export const PROVIDERS = ['meta', 'twilio', 'infobip', 'sandbox'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const secret = z.string().trim().min(1, 'must not be empty').max(4096);
const phoneLike = z
  .string()
  .trim()
  .regex(/^(whatsapp:)?\+?[1-9]\d{6,14}$/, 'must be a phone number: optional "+" and 7-15 digits');

/** Each provider's own credential fields, as the provider names them. */
export const credentialSchemas = {
  meta: z.object({
    phone_number_id: z
      .string()
      .trim()
      .regex(/^\d{1,32}$/, 'must be the numeric phone number id from Meta'),
    access_token: secret,
    app_secret: secret,
    verify_token: secret,
  }),
  twilio: z.object({
    account_sid: z
      .string()
      .trim()
      .regex(/^AC[0-9a-fA-F]{32}$/, 'must be a Twilio account SID (AC + 32 hex digits)'),
    auth_token: secret,
    from: phoneLike,
  }),
  infobip: z.object({
    api_key: secret,
    webhook_secret: z.string().min(16, 'must be at least 16 characters').max(4096),
    sender: phoneLike,
  }),
  sandbox: z.object({}).strict(),
} as const;

export type MetaCredentials = z.infer<typeof credentialSchemas.meta>;
export type TwilioCredentials = z.infer<typeof credentialSchemas.twilio>;
export type InfobipCredentials = z.infer<typeof credentialSchemas.infobip>;
export interface CredentialsByProvider {
  meta: MetaCredentials;
  twilio: TwilioCredentials;
  infobip: InfobipCredentials;
  sandbox: Record<string, never>;
}

/** Fields that may be shown back: identifiers, never secrets. */
const PUBLIC_FIELDS = new Set(['phone_number_id', 'account_sid', 'from', 'sender']);

export const templateSchema = z.object({
  name: z.string().trim().min(1).max(512).describe('Approved template name (Twilio: the Content SID, HX…)'),
  language: z.string().trim().min(2).max(15).default('en'),
});
export type ReopenTemplate = z.infer<typeof templateSchema>;

const common = {
  display_phone_number: phoneLike.optional(),
  api_base_url: z.string().url('must be an http(s) URL').optional(),
  rate_per_second: z.number().int().min(1).max(1000).default(80),
  team: z.string().trim().min(1).max(100).optional(),
  template: templateSchema.optional().describe('Sent instead of a free-form reply outside the 24-hour window'),
};

export const createChannelBody = z.discriminatedUnion('provider', [
  z.object({ provider: z.literal('meta'), credentials: credentialSchemas.meta, ...common }),
  z.object({ provider: z.literal('twilio'), credentials: credentialSchemas.twilio, ...common }),
  z.object({ provider: z.literal('infobip'), credentials: credentialSchemas.infobip, ...common }),
  z.object({ provider: z.literal('sandbox'), credentials: credentialSchemas.sandbox.optional(), ...common }),
]);
export type CreateChannelInput = z.infer<typeof createChannelBody>;

/** Digits only: the form Twilio (`whatsapp:+1…`), Infobip (`1…`) and Meta (`1…`) numbers compare in. */
export function phoneDigits(value: string): string {
  return value.replace(/^whatsapp:/, '').replace(/\D/g, '');
}

function routingKey(input: CreateChannelInput): string | null {
  switch (input.provider) {
    case 'meta':
      return input.credentials.phone_number_id;
    case 'twilio':
      return phoneDigits(input.credentials.from);
    case 'infobip':
      return phoneDigits(input.credentials.sender);
    case 'sandbox':
      return null;
  }
}

/**
 * Registers a number. Credentials are encrypted; inbound webhooks find the channel by the
 * provider's own identifier (routing_key). A tenant's first real channel takes over as the
 * default for replies from the sandbox it started with.
 */
export async function createChannel(db: Db, keyring: Keyring, tenantId: string, input: CreateChannelInput): Promise<Channel> {
  if (input.api_base_url) await assertEgressAllowed(input.api_base_url, 'body.api_base_url');
  const key = routingKey(input);
  return db.transaction(async (tx) => {
    if (key) {
      // Serialise registrations of one number so the conflict is a clean 409, not a constraint error.
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`${input.provider}:${key}`}, 7700))`);
      const [taken] = await tx
        .select({ id: channels.id })
        .from(channels)
        .where(and(eq(channels.provider, input.provider), eq(channels.routingKey, key)));
      if (taken) throw conflict('CHANNEL_EXISTS', `credentials: this ${input.provider} number is already registered`);
    }
    const [row] = await tx
      .insert(channels)
      .values({
        tenantId,
        provider: input.provider,
        displayPhoneNumber: input.display_phone_number ?? null,
        credentialsEnc: input.provider === 'sandbox' ? null : keyring.encrypt(JSON.stringify(input.credentials)),
        routingKey: key,
        apiBaseUrl: input.api_base_url ?? null,
        ratePerSecond: input.rate_per_second,
        team: input.team ?? null,
        verifyTokenHash: input.provider === 'meta' ? keyring.blindIndex(`meta-verify:${input.credentials.verify_token}`) : null,
        reopenTemplate: input.template ?? null,
      })
      .returning();
    if (input.provider === 'sandbox') return row;
    const [current] = await tx
      .select({ id: channels.id, provider: channels.provider })
      .from(channels)
      .where(and(eq(channels.tenantId, tenantId), eq(channels.isDefault, true)))
      .for('update');
    if (!current || current.provider === 'sandbox') {
      if (current) await tx.update(channels).set({ isDefault: false }).where(eq(channels.id, current.id));
      const [promoted] = await tx.update(channels).set({ isDefault: true }).where(eq(channels.id, row.id)).returning();
      return promoted;
    }
    return row;
  });
}

export function channelCredentials<P extends ProviderName>(keyring: Keyring, channel: Channel, provider: P): CredentialsByProvider[P] {
  if (channel.provider !== provider) throw new Error(`channel is a ${channel.provider} channel, not ${provider}`);
  if (provider === 'sandbox') return {} as CredentialsByProvider[P];
  if (!channel.credentialsEnc) throw new Error(`${provider} channel has no credentials`);
  return JSON.parse(keyring.decrypt(channel.credentialsEnc)) as CredentialsByProvider[P];
}

/** Credentials as the API shows them: identifiers kept, secrets replaced. */
export function redactedCredentials(keyring: Keyring, channel: Channel): Record<string, string> {
  if (!channel.credentialsEnc) return {};
  const creds = JSON.parse(keyring.decrypt(channel.credentialsEnc)) as Record<string, string>;
  return Object.fromEntries(Object.entries(creds).map(([k, v]) => [k, PUBLIC_FIELDS.has(k) ? v : '[redacted]']));
}

export async function listChannels(db: Db, tenantId: string): Promise<Channel[]> {
  return db.select().from(channels).where(eq(channels.tenantId, tenantId)).orderBy(asc(channels.createdAt), asc(channels.id));
}

export async function findChannelByRouting(db: Db, provider: ProviderName, key: string): Promise<Channel | undefined> {
  const [row] = await db
    .select()
    .from(channels)
    .where(and(eq(channels.provider, provider), eq(channels.routingKey, key)));
  return row;
}

export async function findChannelsByRouting(db: Db, provider: ProviderName, keys: string[]): Promise<Channel[]> {
  if (keys.length === 0) return [];
  return db
    .select()
    .from(channels)
    .where(and(eq(channels.provider, provider), inArray(channels.routingKey, keys)));
}

export async function findMetaChannelsByVerifyToken(db: Db, keyring: Keyring, token: string): Promise<Channel[]> {
  return db
    .select()
    .from(channels)
    .where(and(eq(channels.provider, 'meta'), eq(channels.verifyTokenHash, keyring.blindIndex(`meta-verify:${token}`))));
}

export async function findChannel(db: Db, id: string): Promise<Channel | undefined> {
  const [row] = await db.select().from(channels).where(eq(channels.id, id));
  return row;
}
