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
}

export interface SendResult {
  providerMessageId: string;
}

export interface Provider {
  readonly name: string;
  sendText(message: OutboundText): Promise<SendResult>;
}
