import { randomBytes } from 'node:crypto';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { webhookEndpoints, type WebhookEndpoint } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { assertEgressAllowed, egressPolicy } from '../platform/egress.js';
import { badRequest, notFound } from '../platform/errors.js';
import type { EventType } from './emit.js';

/** During a rotation the previous secret keeps signing (beside the new one) this long. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

export interface EndpointInput {
  url: string;
  events: (EventType | '*')[];
  description?: string | null;
  include_message_text?: boolean;
  include_phone?: boolean;
}

/** What the API shows of an endpoint: never a secret. */
export function endpointView(e: WebhookEndpoint) {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    events: e.events as (EventType | '*')[],
    include_message_text: e.includeMessageText,
    include_phone: e.includePhone,
    enabled: e.enabled,
    disabled_reason: e.disabledReason,
    failing_since: e.failingSince?.toISOString() ?? null,
    previous_secret_expires_at: e.previousSecretExpiresAt?.toISOString() ?? null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/**
 * An endpoint URL must pass the egress policy now (and again at every connection); plain http only
 * to a destination the operator allowlisted.
 */
async function checkUrl(url: string): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badRequest('INVALID_URL', 'body.url: must be an absolute URL');
  }
  if (parsed.username || parsed.password) throw badRequest('INVALID_URL', 'body.url: must not carry credentials');
  if (parsed.protocol === 'http:') {
    const port = Number(parsed.port || 80);
    if (!egressPolicy().allowlisted(parsed.hostname, port)) {
      throw badRequest('HTTPS_REQUIRED', 'body.url: must use https (plain http only to an operator-allowlisted destination)');
    }
  } else if (parsed.protocol !== 'https:') throw badRequest('INVALID_URL', 'body.url: must be an https URL');
  await assertEgressAllowed(url, 'body.url');
}

export async function createEndpoint(db: Db, keyring: Keyring, tenantId: string, input: EndpointInput) {
  await checkUrl(input.url);
  const secret = newSecret();
  const [row] = await db
    .insert(webhookEndpoints)
    .values({
      tenantId,
      url: input.url,
      description: input.description ?? null,
      events: input.events,
      includeMessageText: input.include_message_text ?? false,
      includePhone: input.include_phone ?? false,
      secretEnc: keyring.encrypt(secret, { tenantId, column: webhookEndpoints.secretEnc }),
    })
    .returning();
  return { endpoint: row, secret };
}

export async function listEndpoints(db: Db, tenantId: string): Promise<WebhookEndpoint[]> {
  return db.select().from(webhookEndpoints).where(eq(webhookEndpoints.tenantId, tenantId)).orderBy(asc(webhookEndpoints.createdAt));
}

export async function getEndpoint(db: Db, tenantId: string, id: string): Promise<WebhookEndpoint> {
  const [row] = await db
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.tenantId, tenantId), eq(webhookEndpoints.id, id)));
  if (!row) throw notFound('ENDPOINT_NOT_FOUND', `id: no webhook endpoint "${id}"`);
  return row;
}

export async function updateEndpoint(
  db: Db,
  tenantId: string,
  id: string,
  patch: Partial<EndpointInput> & { enabled?: boolean },
): Promise<WebhookEndpoint> {
  await getEndpoint(db, tenantId, id);
  if (patch.url !== undefined) await checkUrl(patch.url);
  const [row] = await db
    .update(webhookEndpoints)
    .set({
      ...(patch.url !== undefined && { url: patch.url }),
      ...(patch.events !== undefined && { events: patch.events }),
      ...(patch.description !== undefined && { description: patch.description }),
      ...(patch.include_message_text !== undefined && { includeMessageText: patch.include_message_text }),
      ...(patch.include_phone !== undefined && { includePhone: patch.include_phone }),
      // Re-enabling starts the 24-hour failure clock afresh.
      ...(patch.enabled !== undefined && {
        enabled: patch.enabled,
        disabledReason: patch.enabled ? null : 'disabled_by_tenant',
        failingSince: null,
      }),
      updatedAt: sql`now()`,
    })
    .where(and(eq(webhookEndpoints.tenantId, tenantId), eq(webhookEndpoints.id, id)))
    .returning();
  return row;
}

export async function deleteEndpoint(db: Db, tenantId: string, id: string): Promise<void> {
  const rows = await db
    .delete(webhookEndpoints)
    .where(and(eq(webhookEndpoints.tenantId, tenantId), eq(webhookEndpoints.id, id)))
    .returning({ id: webhookEndpoints.id });
  if (rows.length === 0) throw notFound('ENDPOINT_NOT_FOUND', `id: no webhook endpoint "${id}"`);
}

/** A new secret; the current one keeps signing beside it for 24 hours, so receivers can switch without a gap. */
export async function rotateSecret(db: Db, keyring: Keyring, tenantId: string, id: string) {
  const secret = newSecret();
  // A ciphertext is bound to its column, so the outgoing secret is sealed anew for previous_secret_enc;
  // the update only lands on the secret it read, so two concurrent rotations cannot lose one.
  for (;;) {
    const current = await getEndpoint(db, tenantId, id);
    const outgoing = keyring.decrypt(current.secretEnc, { tenantId, column: webhookEndpoints.secretEnc });
    const [row] = await db
      .update(webhookEndpoints)
      .set({
        secretEnc: keyring.encrypt(secret, { tenantId, column: webhookEndpoints.secretEnc }),
        previousSecretEnc: keyring.encrypt(outgoing, { tenantId, column: webhookEndpoints.previousSecretEnc }),
        previousSecretExpiresAt: sql`now() + ${`${ROTATION_OVERLAP_MS} milliseconds`}::interval`,
        updatedAt: sql`now()`,
      })
      .where(and(eq(webhookEndpoints.tenantId, tenantId), eq(webhookEndpoints.id, id), eq(webhookEndpoints.secretEnc, current.secretEnc)))
      .returning();
    if (row) return { endpoint: row, secret };
  }
}

/** The secrets that sign a delivery now: the current one, and the previous one during a rotation. */
export function signingSecrets(
  keyring: Keyring,
  e: Pick<WebhookEndpoint, 'tenantId' | 'secretEnc' | 'previousSecretEnc' | 'previousSecretExpiresAt'>,
): string[] {
  const secrets = [keyring.decrypt(e.secretEnc, { tenantId: e.tenantId, column: webhookEndpoints.secretEnc })];
  if (e.previousSecretEnc && e.previousSecretExpiresAt && e.previousSecretExpiresAt.getTime() > Date.now()) {
    secrets.push(keyring.decrypt(e.previousSecretEnc, { tenantId: e.tenantId, column: webhookEndpoints.previousSecretEnc }));
  }
  return secrets;
}
