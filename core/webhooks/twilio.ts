import { createHmac } from 'node:crypto';
import { safeEqual } from '../platform/crypto.js';
import type { DeliveryStatus } from '../messaging/delivery-status.js';
import { e164, type InboundMedia, type NormalizedInbound, type NormalizedStatus } from './types.js';

/** Twilio's scheme: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by every POST param as key+value, sorted by key. */
export function twilioSignature(url: string, params: Record<string, string>, authToken: string): string {
  const data =
    url +
    Object.keys(params)
      .sort()
      .map((k) => k + params[k])
      .join('');
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

export function verifyTwilioSignature(url: string, params: Record<string, string>, header: string | undefined, authToken: string): boolean {
  if (!header) return false;
  return safeEqual(header.trim(), twilioSignature(url, params, authToken));
}

export function parseForm(raw: Buffer | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw ? raw.toString('utf8') : '')) params[k] = v;
  return params;
}

const STATUS_MAP: Record<string, DeliveryStatus> = {
  sent: 'sent',
  delivered: 'delivered',
  read: 'read',
  failed: 'failed',
  undelivered: 'failed',
};

/** A status callback carries MessageStatus; an inbound message does not. */
export function isTwilioStatus(params: Record<string, string>): boolean {
  return params.MessageStatus !== undefined;
}

/** `sendKey`: the send_key of the StatusCallback URL Parley gave with the send (covered by the signature, which signs the full URL). */
export function normalizeTwilioStatus(p: Record<string, string>, sendKey?: string): NormalizedStatus | undefined {
  const status = STATUS_MAP[p.MessageStatus ?? ''];
  if (!status || !p.MessageSid) return undefined;
  return {
    providerMessageId: p.MessageSid,
    sendKey: sendKey || undefined,
    status,
    errorCode: p.ErrorCode || undefined,
    occurredAt: new Date(),
  };
}

export function normalizeTwilioInbound(p: Record<string, string>): NormalizedInbound | undefined {
  if (!p.MessageSid || !p.From) return undefined;
  const media: InboundMedia[] = [];
  const count = Math.min(Number(p.NumMedia ?? 0) || 0, 10);
  for (let i = 0; i < count; i++) {
    if (p[`MediaUrl${i}`])
      media.push({
        kind: (p[`MediaContentType${i}`] ?? 'media').split('/')[0],
        ref: p[`MediaUrl${i}`],
        mimeType: p[`MediaContentType${i}`],
      });
  }
  let text = p.Body ?? '';
  let choiceId: string | undefined;
  if (p.ButtonText) {
    text = p.ButtonText;
    choiceId = p.ButtonPayload;
  } else if (p.ListTitle) {
    text = p.ListTitle;
    choiceId = p.ListId;
  } else if (!text && p.Latitude && p.Longitude) {
    text = ['[location]', p.Label, p.Address, `(${p.Latitude}, ${p.Longitude})`].filter(Boolean).join(' ');
  } else if (!text && media.length) text = `[${media[0].kind}]`;
  if (!text) return undefined;
  return {
    providerMessageId: p.MessageSid,
    from: e164(p.From),
    text: text.slice(0, 4096),
    timestamp: new Date().toISOString(),
    choiceId,
    media,
  };
}
