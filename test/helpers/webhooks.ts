import { signMeta } from '../../core/webhooks/meta.js';
import { twilioSignature } from '../../core/webhooks/twilio.js';

let counter = 0;
export const wamid = () => `wamid.HBgL${Date.now().toString(36)}${(counter++).toString(36)}`;

export function metaText(from: string, text: string, id = wamid()) {
  return { from: from.replace('+', ''), id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } };
}

/** A Meta `messages` webhook for one phone number id, as Meta sends it. */
export function metaPayload(phoneNumberId: string, value: { messages?: unknown[]; statuses?: unknown[] }) {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId },
              contacts: [{ profile: { name: 'Customer' }, wa_id: '16505551234' }],
              ...value,
            },
          },
        ],
      },
    ],
  };
}

export function metaStatus(id: string, status: string, errors?: { code: number; title: string }[]) {
  return { id, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: '16505551234', ...(errors ? { errors } : {}) };
}

/** Posts a Meta webhook signed with `secret` over exactly the bytes sent (or over `signedBody` to simulate tampering). */
export async function postMeta(
  baseUrl: string,
  payload: unknown,
  secret: string,
  opts: { signedBody?: string; signature?: string | null } = {},
) {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const signature = opts.signature === undefined ? signMeta(opts.signedBody ?? body, secret) : opts.signature;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  const res = await fetch(`${baseUrl}/webhooks/meta`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** `url`: the URL Twilio signs (PUBLIC_BASE_URL's); `path`: where it posts, with any query a StatusCallback URL carries. */
export async function postTwilio(
  baseUrl: string,
  params: Record<string, string>,
  authToken: string,
  opts: { url?: string; path?: string } = {},
) {
  const url = opts.url ?? `${baseUrl}/webhooks/twilio`;
  const res = await fetch(`${baseUrl}${opts.path ?? '/webhooks/twilio'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': twilioSignature(url, params, authToken) },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, text: await res.text() };
}

export async function postInfobip(baseUrl: string, channelId: string, payload: unknown, secret: string | null) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secret !== null) headers['x-webhook-secret'] = secret;
  const res = await fetch(`${baseUrl}/webhooks/infobip/${channelId}`, { method: 'POST', headers, body: JSON.stringify(payload) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
