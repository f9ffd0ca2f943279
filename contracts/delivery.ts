/** Delivery of recorded replies through real providers, and inbound media downloads. */

/** Attempts of the deliverReply activity: its retry policy, and the activity that records the last failed attempt. */
export const DELIVERY_MAX_ATTEMPTS = 8;

export interface DeliverReplyInput {
  tenantId: string;
  messageId: string;
  channelId: string;
  contactId: string;
  conversationId: string;
}

export interface DeliveredReply {
  messageId: string;
  /** `unknown`: the provider may have taken it and could not tell (see docs/providers.md); never resent. */
  status: 'sent' | 'failed' | 'unknown';
  sentAt: string;
  /** How it went out: the free-form text, or the channel's template outside the 24-hour window. */
  via?: 'text' | 'template';
}

export interface MarkDeliveryFailedInput {
  tenantId: string;
  messageId: string;
}

export interface MediaDownloadInput {
  tenantId: string;
  mediaId: string;
}

export interface MediaDownloadResult {
  status: 'downloaded' | 'failed';
  sizeBytes?: number;
}

/** Downloads one inbound media item (started by the webhook once the message is durable). */
export type MediaDownloadWorkflow = (input: MediaDownloadInput) => Promise<MediaDownloadResult>;
