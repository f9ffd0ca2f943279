import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { safeEqual } from '../platform/crypto.js';
import type { DeliveryStatus } from '../messaging/delivery-status.js';
import { e164, type InboundMedia, type NormalizedInbound, type NormalizedStatus } from './types.js';

/** `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app secret>`, compared in constant time. */
export function verifyMetaSignature(raw: Buffer, header: string | undefined, appSecret: string): boolean {
  if (!header || !header.startsWith('sha256=')) return false;
  const expected = 'sha256=' + createHmac('sha256', appSecret).update(raw).digest('hex');
  return safeEqual(header.trim().toLowerCase(), expected);
}

export function signMeta(raw: Buffer | string, appSecret: string): string {
  return 'sha256=' + createHmac('sha256', appSecret).update(raw).digest('hex');
}

const media = z.object({
  id: z.string(),
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
});

const metaMessage = z.object({
  from: z.string().regex(/^\d{6,15}$/, "must be the sender's digits"),
  id: z.string().min(1),
  timestamp: z.string().regex(/^\d+$/, 'must be unix seconds'),
  type: z.string(),
  text: z.object({ body: z.string() }).optional(),
  interactive: z
    .object({
      type: z.string(),
      button_reply: z.object({ id: z.string(), title: z.string() }).optional(),
      list_reply: z.object({ id: z.string(), title: z.string(), description: z.string().optional() }).optional(),
    })
    .optional(),
  button: z.object({ payload: z.string().optional(), text: z.string() }).optional(),
  image: media.optional(),
  video: media.optional(),
  audio: media.optional(),
  document: media.optional(),
  sticker: media.optional(),
  location: z
    .object({ latitude: z.number(), longitude: z.number(), name: z.string().optional(), address: z.string().optional() })
    .optional(),
});

const metaStatus = z.object({
  id: z.string().min(1),
  status: z.string(),
  timestamp: z.string().regex(/^\d+$/),
  errors: z.array(z.object({ code: z.number(), title: z.string().optional() })).optional(),
  biz_opaque_callback_data: z.string().max(512).optional(),
});

export const metaWebhookSchema = z.object({
  object: z.string(),
  entry: z.array(
    z.object({
      changes: z.array(
        z.object({
          field: z.string(),
          value: z.object({
            metadata: z.object({ phone_number_id: z.string(), display_phone_number: z.string().optional() }).optional(),
            messages: z.array(metaMessage).optional(),
            statuses: z.array(metaStatus).optional(),
          }),
        }),
      ),
    }),
  ),
});

export type MetaWebhook = z.infer<typeof metaWebhookSchema>;

/** The phone_number_ids a payload addresses, read before verification to find the secrets to verify with. */
export function metaPhoneNumberIds(parsed: unknown): string[] {
  const ids = new Set<string>();
  const entries = (parsed as { entry?: unknown })?.entry;
  if (!Array.isArray(entries)) return [];
  for (const entry of entries) {
    const changes = (entry as { changes?: unknown })?.changes;
    if (!Array.isArray(changes)) continue;
    for (const change of changes) {
      const id = (change as { value?: { metadata?: { phone_number_id?: unknown } } })?.value?.metadata?.phone_number_id;
      if (typeof id === 'string') ids.add(id);
    }
  }
  return [...ids];
}

const IGNORED_TYPES = new Set(['reaction', 'system', 'unsupported', 'ephemeral', 'request_welcome']);
const MEDIA_TYPES = ['image', 'video', 'audio', 'document', 'sticker'] as const;
const STATUSES = new Set<DeliveryStatus>(['sent', 'delivered', 'read', 'failed']);

function normalizeMessage(m: z.infer<typeof metaMessage>): NormalizedInbound | undefined {
  if (IGNORED_TYPES.has(m.type)) return undefined;
  const base = { providerMessageId: m.id, from: e164(m.from), timestamp: new Date(Number(m.timestamp) * 1000).toISOString() };
  const mediaItems: InboundMedia[] = [];
  let text: string;
  let choiceId: string | undefined;
  if (m.type === 'text' && m.text) text = m.text.body;
  else if (m.type === 'interactive' && m.interactive?.button_reply) {
    text = m.interactive.button_reply.title;
    choiceId = m.interactive.button_reply.id;
  } else if (m.type === 'interactive' && m.interactive?.list_reply) {
    text = m.interactive.list_reply.title;
    choiceId = m.interactive.list_reply.id;
  } else if (m.type === 'button' && m.button) {
    text = m.button.text;
    choiceId = m.button.payload;
  } else if (m.type === 'location' && m.location) {
    const { latitude, longitude, name, address } = m.location;
    text = ['[location]', name, address, `(${latitude}, ${longitude})`].filter(Boolean).join(' ');
  } else if ((MEDIA_TYPES as readonly string[]).includes(m.type) && m[m.type as (typeof MEDIA_TYPES)[number]]) {
    const item = m[m.type as (typeof MEDIA_TYPES)[number]]!;
    mediaItems.push({ kind: m.type, ref: item.id, mimeType: item.mime_type, sha256: item.sha256, filename: item.filename });
    text = item.caption?.trim() || `[${m.type}]`;
  } else text = `[${m.type}]`;
  return { ...base, text: text.slice(0, 4096) || `[${m.type}]`, choiceId, media: mediaItems };
}

export interface MetaChange {
  phoneNumberId: string;
  messages: NormalizedInbound[];
  statuses: NormalizedStatus[];
  ignored: number;
}

export function normalizeMeta(payload: MetaWebhook): MetaChange[] {
  const out: MetaChange[] = [];
  for (const entry of payload.entry) {
    for (const change of entry.changes) {
      const phoneNumberId = change.value.metadata?.phone_number_id;
      if (change.field !== 'messages' || !phoneNumberId) continue;
      let ignored = 0;
      const messages: NormalizedInbound[] = [];
      for (const m of change.value.messages ?? []) {
        const n = normalizeMessage(m);
        if (n) messages.push(n);
        else ignored++;
      }
      const statuses: NormalizedStatus[] = [];
      for (const s of change.value.statuses ?? []) {
        if (!STATUSES.has(s.status as DeliveryStatus)) {
          ignored++;
          continue;
        }
        const err = s.errors?.[0];
        statuses.push({
          providerMessageId: s.id,
          sendKey: s.biz_opaque_callback_data,
          status: s.status as DeliveryStatus,
          errorCode: err ? String(err.code) : undefined,
          errorTitle: err?.title,
          occurredAt: new Date(Number(s.timestamp) * 1000),
        });
      }
      out.push({ phoneNumberId, messages, statuses, ignored });
    }
  }
  return out;
}
