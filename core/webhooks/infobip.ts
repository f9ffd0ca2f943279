import { z } from 'zod';
import type { DeliveryStatus } from '../messaging/delivery-status.js';
import { e164, type InboundMedia, type NormalizedInbound, type NormalizedStatus } from './types.js';

const result = z.object({
  messageId: z.string().min(1),
  from: z.string().optional(),
  to: z.string().optional(),
  receivedAt: z.string().optional(),
  doneAt: z.string().optional(),
  sentAt: z.string().optional(),
  seenAt: z.string().optional(),
  message: z
    .object({
      type: z.string(),
      text: z.string().optional(),
      caption: z.string().optional(),
      url: z.string().optional(),
      id: z.string().optional(),
      title: z.string().optional(),
      description: z.string().optional(),
      latitude: z.number().optional(),
      longitude: z.number().optional(),
      name: z.string().optional(),
      address: z.string().optional(),
    })
    .optional(),
  status: z.object({ groupName: z.string(), name: z.string().optional() }).optional(),
  error: z.object({ id: z.number().optional(), name: z.string().optional(), groupName: z.string().optional() }).nullish(),
});

export const infobipWebhookSchema = z.object({ results: z.array(result) });
export type InfobipWebhook = z.infer<typeof infobipWebhookSchema>;

/** Infobip writes offsets without a colon (+0000); Date wants one. */
function isoDate(value: string | undefined): Date {
  if (!value) return new Date();
  const d = new Date(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

const GROUP_STATUS: Record<string, DeliveryStatus> = {
  PENDING: 'sent',
  DELIVERED: 'delivered',
  UNDELIVERABLE: 'failed',
  EXPIRED: 'failed',
  REJECTED: 'failed',
};

export interface InfobipItems {
  messages: { to: string; message: NormalizedInbound }[];
  statuses: NormalizedStatus[];
  ignored: number;
}

export function normalizeInfobip(payload: InfobipWebhook): InfobipItems {
  const out: InfobipItems = { messages: [], statuses: [], ignored: 0 };
  for (const r of payload.results) {
    if (r.message && r.from && r.to) {
      const m = r.message;
      const media: InboundMedia[] = [];
      let text: string;
      let choiceId: string | undefined;
      switch (m.type) {
        case 'TEXT':
          text = m.text ?? '';
          break;
        case 'INTERACTIVE_BUTTON_REPLY':
        case 'INTERACTIVE_LIST_REPLY':
          text = m.title ?? '';
          choiceId = m.id;
          break;
        case 'LOCATION':
          text = ['[location]', m.name, m.address, `(${m.latitude}, ${m.longitude})`].filter(Boolean).join(' ');
          break;
        default:
          if (m.url) media.push({ kind: m.type.toLowerCase(), ref: m.url });
          text = m.caption?.trim() || `[${m.type.toLowerCase()}]`;
      }
      if (!text) {
        out.ignored++;
        continue;
      }
      out.messages.push({
        to: r.to,
        message: {
          providerMessageId: r.messageId,
          from: e164(r.from),
          text: text.slice(0, 4096),
          timestamp: isoDate(r.receivedAt).toISOString(),
          choiceId,
          media,
        },
      });
    } else if (r.status) {
      const status = GROUP_STATUS[r.status.groupName];
      if (!status) {
        out.ignored++;
        continue;
      }
      const failed = status === 'failed';
      out.statuses.push({
        providerMessageId: r.messageId,
        status,
        errorCode: failed ? (r.error?.name ?? r.status.name) : undefined,
        errorTitle: failed ? r.error?.groupName : undefined,
        occurredAt: isoDate(r.doneAt ?? r.sentAt),
      });
    } else if (r.seenAt) {
      out.statuses.push({ providerMessageId: r.messageId, status: 'read', occurredAt: isoDate(r.seenAt) });
    } else out.ignored++;
  }
  return out;
}
