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
   * `text` is then the rendered body the template's parameters fill in. Providers with
   * `sendTemplate` are sent the template itself; the sandbox records its name with the text.
   */
  template?: { name: string; language?: string; parameters?: string[] };
}

export interface SendResult {
  providerMessageId: string;
}

/** Reply buttons (WhatsApp allows up to 3, titles up to 20 characters). */
export interface InteractiveButtons {
  kind: 'buttons';
  body: string;
  buttons: { id: string; title: string }[];
}

/** A list message: a button that opens sections of rows (up to 10 rows in all). */
export interface InteractiveList {
  kind: 'list';
  body: string;
  /** The label of the button that opens the list. */
  button: string;
  sections: { title?: string; rows: { id: string; title: string; description?: string }[] }[];
}

export type Interactive = InteractiveButtons | InteractiveList;

export type OutboundInteractive = Omit<OutboundText, 'text'> & { interactive: Interactive };

/** An approved template: the only thing WhatsApp lets a business send outside the 24-hour window. */
export type OutboundTemplate = Omit<OutboundText, 'text' | 'template'> & {
  template: { name: string; language: string; parameters?: string[] };
};

export interface DownloadedMedia {
  data: Buffer;
  mimeType?: string;
  sha256?: string;
}

/** What a provider is asked about a send whose outcome is unknown: did it take this message? */
export interface SentQuery {
  channel: Channel;
  to: string;
  /** The free text sent, or undefined for a template (its rendered body is the provider's). */
  text?: string;
  /** When the first call whose outcome is unknown started. */
  since: Date;
}

/**
 * How an unknown send is reconciled before any retry (core/messaging/reconcile.ts):
 * `resend` when a repeat under the same key cannot reach the customer twice (the provider's own
 * idempotency), `lookup` when the provider's message API can be asked, `status-callback` when
 * only the provider's status webhook, which echoes the send key, can tell.
 */
export type ReconcileBy = 'resend' | 'lookup' | 'status-callback';

export interface Provider {
  readonly name: string;
  readonly reconcileBy: ReconcileBy;
  /** For `lookup` providers: ids of messages the provider took that may be this send, newest first. */
  findSent?(query: SentQuery): Promise<string[]>;
  sendText(message: OutboundText): Promise<SendResult>;
  /** Present on providers with native buttons and lists; others get numbered text (see interactive.ts). */
  sendInteractive?(message: OutboundInteractive): Promise<SendResult>;
  sendTemplate?(message: OutboundTemplate): Promise<SendResult>;
  /** Fetches inbound media by the reference its webhook carried (Meta media id, or a URL). */
  downloadMedia?(channel: Channel, ref: string): Promise<DownloadedMedia>;
}
