import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { channels, conversations, type Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { conflict, notFound } from '../platform/errors.js';
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

export const updateChannelBody = z
  .object({
    enabled: z
      .boolean()
      .describe(
        'false: webhooks for this number answer 404 CHANNEL_DISABLED and nothing is sent through it; the default cannot be disabled',
      ),
    default: z
      .literal(true)
      .describe('Make this the channel replies, campaigns and POST /webhook/inbound use; the previous default stays registered'),
    display_phone_number: phoneLike.nullable(),
    rate_per_second: common.rate_per_second.unwrap(),
    team: common.team.unwrap().nullable(),
    template: templateSchema.nullable().describe('Sent instead of a free-form reply outside the 24-hour window; null removes it'),
  })
  .partial()
  .strict();
export type UpdateChannelInput = z.infer<typeof updateChannelBody>;

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
 * provider's own identifier (routing_key). A real channel registered while the sandbox is the
 * default (as every tenant starts) takes over as the default for replies.
 */
export async function createChannel(db: Db, keyring: Keyring, tenantId: string, input: CreateChannelInput): Promise<Channel> {
  if (input.api_base_url) await assertEgressAllowed(input.api_base_url, 'body.api_base_url');
  const key = routingKey(input);
  return db.transaction(async (tx) => {
    await lockTenantChannels(tx, tenantId);
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
        credentialsEnc:
          input.provider === 'sandbox'
            ? null
            : keyring.encrypt(JSON.stringify(input.credentials), { tenantId, column: channels.credentialsEnc }),
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
  return JSON.parse(
    keyring.decrypt(channel.credentialsEnc, { tenantId: channel.tenantId, column: channels.credentialsEnc }),
  ) as CredentialsByProvider[P];
}

/** Credentials as the API shows them: identifiers kept, secrets replaced. */
export function redactedCredentials(keyring: Keyring, channel: Channel): Record<string, string> {
  if (!channel.credentialsEnc) return {};
  const creds = JSON.parse(
    keyring.decrypt(channel.credentialsEnc, { tenantId: channel.tenantId, column: channels.credentialsEnc }),
  ) as Record<string, string>;
  return Object.fromEntries(Object.entries(creds).map(([k, v]) => [k, PUBLIC_FIELDS.has(k) ? v : '[redacted]']));
}

export async function listChannels(db: Db, tenantId: string): Promise<Channel[]> {
  return db
    .select()
    .from(channels)
    .where(and(eq(channels.tenantId, tenantId), isNull(channels.deletedAt)))
    .orderBy(asc(channels.createdAt), asc(channels.id));
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Serialises changes to which of a tenant's channels is the default (one at a time, enforced by channels_one_default). */
async function lockTenantChannels(tx: Tx, tenantId: string): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`channels:${tenantId}`}, 7701))`);
}

async function liveChannel(tx: Tx, tenantId: string, channelId: string): Promise<Channel> {
  const [row] = await tx
    .select()
    .from(channels)
    .where(and(eq(channels.tenantId, tenantId), eq(channels.id, channelId), isNull(channels.deletedAt)));
  if (!row) throw notFound('CHANNEL_NOT_FOUND', `channel_id: no channel "${channelId}" for this tenant`);
  return row;
}

async function takeDefault(tx: Tx, tenantId: string, channelId: string): Promise<void> {
  await tx
    .update(channels)
    .set({ isDefault: false })
    .where(and(eq(channels.tenantId, tenantId), eq(channels.isDefault, true)));
  await tx.update(channels).set({ isDefault: true }).where(eq(channels.id, channelId));
}

const defaultChannelConflict = () =>
  conflict('CHANNEL_IS_DEFAULT', 'channel_id: this is the default channel; make another channel the default first ({"default": true})');

/**
 * Changes a channel. The default channel is always an enabled one: disabling the default is
 * refused, and a disabled channel becomes the default only when the same change enables it.
 */
export async function updateChannel(db: Db, tenantId: string, channelId: string, input: UpdateChannelInput): Promise<Channel> {
  return db.transaction(async (tx) => {
    await lockTenantChannels(tx, tenantId);
    const current = await liveChannel(tx, tenantId, channelId);
    const enabled = input.enabled ?? current.enabled;
    if (!enabled && current.isDefault) throw defaultChannelConflict();
    if (!enabled && input.default) {
      throw conflict('CHANNEL_DISABLED', 'default: a disabled channel cannot be the default; send "enabled": true with it');
    }
    const [row] = await tx
      .update(channels)
      .set({
        enabled,
        ...(input.display_phone_number !== undefined ? { displayPhoneNumber: input.display_phone_number } : {}),
        ...(input.rate_per_second !== undefined ? { ratePerSecond: input.rate_per_second } : {}),
        ...(input.team !== undefined ? { team: input.team } : {}),
        ...(input.template !== undefined ? { reopenTemplate: input.template } : {}),
      })
      .where(eq(channels.id, channelId))
      .returning();
    // After the update: a channel enabled by this same change may take the default.
    if (!input.default || current.isDefault) return row;
    await takeDefault(tx, tenantId, channelId);
    return { ...row, isDefault: true };
  });
}

/**
 * Deletes a channel softly: its conversations and messages stay (export, retention), its
 * credentials and routing identifiers are erased, so its webhooks find nothing and the number
 * can be registered again. The default channel cannot be deleted; a channel with open
 * conversations only with `force` (their replies are then recorded as failed, code channel_disabled).
 */
export async function deleteChannel(db: Db, tenantId: string, channelId: string, opts: { force: boolean }): Promise<void> {
  await db.transaction(async (tx) => {
    await lockTenantChannels(tx, tenantId);
    const current = await liveChannel(tx, tenantId, channelId);
    if (current.isDefault) throw defaultChannelConflict();
    const [open] = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(conversations)
      .where(and(eq(conversations.tenantId, tenantId), eq(conversations.channelId, channelId), eq(conversations.status, 'open')));
    if (open.n > 0 && !opts.force) {
      throw conflict(
        'CHANNEL_IN_USE',
        `channel_id: ${open.n} open conversation(s) use this channel; wait until they close or delete with ?force=true`,
      );
    }
    await tx
      .update(channels)
      .set({ enabled: false, deletedAt: sql`now()`, credentialsEnc: null, routingKey: null, verifyTokenHash: null })
      .where(eq(channels.id, channelId));
  });
}

/** Makes the tenant's sandbox channel the default again (enabling it, or creating one if it was deleted). */
export async function makeSandboxDefault(db: Db, tenantId: string): Promise<Channel> {
  return db.transaction(async (tx) => {
    await lockTenantChannels(tx, tenantId);
    let [sandbox] = await tx
      .select()
      .from(channels)
      .where(and(eq(channels.tenantId, tenantId), eq(channels.provider, 'sandbox'), isNull(channels.deletedAt)))
      .orderBy(asc(channels.createdAt), asc(channels.id))
      .limit(1);
    sandbox ??= (await tx.insert(channels).values({ tenantId, provider: 'sandbox' }).returning())[0];
    await tx.update(channels).set({ enabled: true }).where(eq(channels.id, sandbox.id));
    if (!sandbox.isDefault) await takeDefault(tx, tenantId, sandbox.id);
    return liveChannel(tx, tenantId, sandbox.id);
  });
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

/** A channel by id, unless deleted (webhooks addressed to a deleted channel find nothing). */
export async function findChannel(db: Db, id: string): Promise<Channel | undefined> {
  const [row] = await db
    .select()
    .from(channels)
    .where(and(eq(channels.id, id), isNull(channels.deletedAt)));
  return row;
}
