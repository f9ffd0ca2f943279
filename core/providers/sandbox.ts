import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { sandboxMessages } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import type { OutboundText, Provider, SendResult } from './types.js';

/**
 * The provider used while a tenant has no WhatsApp credentials: "sent" messages are
 * stored (encrypted) and can be read back through the API. Its idempotency key makes
 * a retried send a no-op, so tests can prove a reply is delivered exactly once.
 */
export class SandboxProvider implements Provider {
  readonly name = 'sandbox';
  readonly reconcileBy = 'resend';

  constructor(
    private readonly db: Db,
    private readonly keyring: Keyring,
    private readonly latencyMs = 0,
  ) {}

  async sendText(message: OutboundText): Promise<SendResult> {
    if (this.latencyMs > 0) await delay(this.latencyMs);
    const inserted = await this.db
      .insert(sandboxMessages)
      .values({
        tenantId: message.tenantId,
        channelId: message.channel.id,
        toHash: this.keyring.blindIndex(message.to),
        toEnc: this.keyring.encrypt(message.to, { tenantId: message.tenantId, column: sandboxMessages.toEnc }),
        textEnc: this.keyring.encrypt(message.text, { tenantId: message.tenantId, column: sandboxMessages.textEnc }),
        inReplyTo: message.inReplyTo,
        idempotencyKey: message.idempotencyKey,
        templateName: message.template?.name ?? null,
      })
      .onConflictDoNothing({ target: sandboxMessages.idempotencyKey })
      .returning({ id: sandboxMessages.id });
    if (inserted[0]) return { providerMessageId: `sandbox:${inserted[0].id}` };
    const existing = await this.db
      .select({ id: sandboxMessages.id })
      .from(sandboxMessages)
      .where(sql`${sandboxMessages.idempotencyKey} = ${message.idempotencyKey}`);
    return { providerMessageId: `sandbox:${existing[0].id}` };
  }
}
