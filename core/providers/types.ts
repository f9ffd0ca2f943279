import type { Channel } from '../db/schema.js';

export interface OutboundText {
  tenantId: string;
  channel: Channel;
  /** E.164 number, decrypted only for the duration of the send. */
  to: string;
  text: string;
  /** Stable per reply: a retried send with the same key must not message the customer twice. */
  idempotencyKey: string;
  inReplyTo: string[];
  /**
   * An approved template, required outside WhatsApp's 24-hour customer-service window;
   * `text` is then the rendered body the template's parameters fill in.
   */
  template?: { name: string; parameters: string[] };
}

export interface SendResult {
  providerMessageId: string;
}

export interface Provider {
  readonly name: string;
  sendText(message: OutboundText): Promise<SendResult>;
}
