import type { DeliveryStatus } from '../messaging/delivery-status.js';

export interface InboundMedia {
  kind: string;
  /** Meta media id, or the URL Twilio/Infobip host it at. */
  ref: string;
  mimeType?: string;
  sha256?: string;
  filename?: string;
}

/** One customer message from any provider, in the form acceptInbound takes. */
export interface NormalizedInbound {
  providerMessageId: string;
  /** E.164. */
  from: string;
  /** What the conversation sees: the text, a button/list choice's title, a caption or a placeholder. */
  text: string;
  timestamp: string;
  /** The id of the chosen button or list row, for flows. */
  choiceId?: string;
  media: InboundMedia[];
}

export interface NormalizedStatus {
  providerMessageId: string;
  /** The send key the provider echoed (Meta's biz_opaque_callback_data, a Twilio StatusCallback's send_key). */
  sendKey?: string;
  status: DeliveryStatus;
  errorCode?: string;
  errorTitle?: string;
  occurredAt: Date;
}

export const e164 = (digitsOrPlus: string) => `+${digitsOrPlus.replace(/^whatsapp:/, '').replace(/\D/g, '')}`;
