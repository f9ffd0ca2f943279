import { ApplicationFailure } from '@temporalio/common';
import type { Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { channelCredentials, phoneDigits } from './channels.js';
import {
  EgressRefusedError,
  egressFailure,
  egressFetch,
  egressPolicy,
  findEgressRefusal,
  readCapped,
  ResponseTooLargeError,
} from '../platform/egress.js';
import { baseUrl, classifyStatus, providerFailure, providerFetch, type FailureClass, type ProviderSettings } from './http.js';
import type { DownloadedMedia, OutboundInteractive, OutboundTemplate, OutboundText, Provider, SendResult } from './types.js';

/** Graph API error codes that mean "later", not "never". */
const THROTTLED = new Set([4, 80007, 130429, 131056]);
const UNAVAILABLE = new Set([1, 2, 131000, 131016]);

interface GraphError {
  error?: { code?: number; error_subcode?: number; type?: string; title?: string; message?: string };
}

/**
 * WhatsApp Cloud API: POST /{version}/{phone_number_id}/messages with the channel's bearer token.
 * Meta has no API to read a sent message back, so each send carries its key as
 * `biz_opaque_callback_data`, which Meta echoes in the message's status webhooks: that is how an
 * unknown send is recognised (core/messaging/reconcile.ts).
 */
export class MetaProvider implements Provider {
  readonly name = 'meta';
  readonly reconcileBy = 'status-callback';

  constructor(
    private readonly keyring: Keyring,
    private readonly settings: ProviderSettings,
  ) {}

  private base(channel: Channel): string {
    return `${baseUrl(channel.apiBaseUrl, this.settings.metaGraphUrl)}/${this.settings.metaApiVersion}`;
  }

  private async post(channel: Channel, to: string, key: string, content: Record<string, unknown>): Promise<SendResult> {
    const creds = channelCredentials(this.keyring, channel, 'meta');
    const res = await providerFetch(
      'meta',
      `${this.base(channel)}/${creds.phone_number_id}/messages`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${creds.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          messaging_product: 'whatsapp',
          recipient_type: 'individual',
          to: phoneDigits(to),
          ...content,
          biz_opaque_callback_data: key,
        }),
      },
      this.settings.timeoutMs,
    );
    if (res.status >= 200 && res.status < 300) {
      const id = (res.body as { messages?: { id?: string }[] } | undefined)?.messages?.[0]?.id;
      if (!id) throw providerFailure('unknown', { provider: 'meta', httpStatus: res.status, title: 'response without a message id' });
      return { providerMessageId: id };
    }
    throw this.failure(res.status, res.body as GraphError, res.headers);
  }

  private failure(status: number, body: GraphError | undefined, headers: Headers) {
    const code = body?.error?.code;
    let kind: FailureClass = classifyStatus(status, code !== undefined);
    if (code !== undefined && THROTTLED.has(code)) kind = 'throttled';
    else if (code !== undefined && UNAVAILABLE.has(code)) kind = 'unavailable';
    return providerFailure(
      kind,
      { provider: 'meta', httpStatus: status, code: code?.toString(), title: body?.error?.title ?? body?.error?.type },
      headers,
    );
  }

  sendText(m: OutboundText): Promise<SendResult> {
    return this.post(m.channel, m.to, m.idempotencyKey, { type: 'text', text: { preview_url: false, body: m.text } });
  }

  sendInteractive(m: OutboundInteractive): Promise<SendResult> {
    const i = m.interactive;
    const interactive =
      i.kind === 'buttons'
        ? {
            type: 'button',
            body: { text: i.body },
            action: { buttons: i.buttons.map((b) => ({ type: 'reply', reply: { id: b.id, title: b.title } })) },
          }
        : {
            type: 'list',
            body: { text: i.body },
            action: {
              button: i.button,
              sections: i.sections.map((s) => ({
                ...(s.title ? { title: s.title } : {}),
                rows: s.rows.map((r) => ({ id: r.id, title: r.title, ...(r.description ? { description: r.description } : {}) })),
              })),
            },
          };
    return this.post(m.channel, m.to, m.idempotencyKey, { type: 'interactive', interactive });
  }

  sendTemplate(m: OutboundTemplate): Promise<SendResult> {
    const { name, language, parameters } = m.template;
    return this.post(m.channel, m.to, m.idempotencyKey, {
      type: 'template',
      template: {
        name,
        language: { code: language },
        ...(parameters?.length ? { components: [{ type: 'body', parameters: parameters.map((text) => ({ type: 'text', text })) }] } : {}),
      },
    });
  }

  /** Media id → short-lived URL (GET /{media_id}) → bytes, both with the channel's token. */
  async downloadMedia(channel: Channel, mediaId: string): Promise<DownloadedMedia> {
    const creds = channelCredentials(this.keyring, channel, 'meta');
    const auth = { authorization: `Bearer ${creds.access_token}` };
    const meta = await providerFetch(
      'meta',
      `${this.base(channel)}/${encodeURIComponent(mediaId)}`,
      { headers: auth },
      this.settings.timeoutMs,
    );
    if (meta.status !== 200) throw this.failure(meta.status, meta.body as GraphError, meta.headers);
    const info = meta.body as { url?: string; mime_type?: string; sha256?: string };
    if (!info.url) throw providerFailure('rejected', { provider: 'meta', httpStatus: 200, title: 'media without a URL' });
    return fetchBytes('meta', info.url, auth, this.settings.timeoutMs, {
      hosts: [...META_MEDIA_HOSTS, new URL(this.base(channel)).host],
      mimeType: info.mime_type,
      sha256: info.sha256,
    });
  }
}

/** Where Meta serves media from: its CDN and the lookaside host the Graph API hands out. */
const META_MEDIA_HOSTS = ['*.fbcdn.net', 'lookaside.fbsbx.com'];

/** WhatsApp's own size limits per media type; documents (anything else) up to 100 MB. */
const MEDIA_MAX_BYTES: Record<string, number> = {
  image: 5 * 1024 * 1024,
  audio: 16 * 1024 * 1024,
  video: 16 * 1024 * 1024,
};
const DOCUMENT_MAX_BYTES = 100 * 1024 * 1024;
const STICKER_MAX_BYTES = 500 * 1024;

export function mediaMaxBytes(mimeType: string | undefined): number {
  const type = (mimeType ?? '').toLowerCase();
  if (type === 'image/webp') return STICKER_MAX_BYTES;
  return MEDIA_MAX_BYTES[type.split('/')[0]] ?? DOCUMENT_MAX_BYTES;
}

const hostMatches = (host: string, pattern: string) =>
  pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : host === pattern;

export interface MediaSource {
  /** The provider's own hosts (`*.fbcdn.net`, `api.twilio.com`, the channel's API host); any other needs a host:port in EGRESS_ALLOW. */
  hosts: string[];
  mimeType?: string;
  sha256?: string;
}

/**
 * Downloads a media URL that arrived in a webhook: only from the provider's hosts (or a
 * destination the operator allowlisted), through the egress policy, at most three redirects
 * (each checked; the auth header stays with the first origin), capped by the media type's size.
 */
export async function fetchBytes(
  provider: string,
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
  source: MediaSource,
): Promise<DownloadedMedia> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw providerFailure('rejected', { provider, title: 'media URL is not a URL' });
  }
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  if (
    !source.hosts.some((h) => hostMatches(target.host, h) || hostMatches(target.hostname, h)) &&
    !egressPolicy().namesHostPort(target.hostname, port)
  ) {
    throw egressFailure(new EgressRefusedError(target.host, `not a ${provider} media host`));
  }
  const deadline = Date.now() + timeoutMs;
  try {
    const res = await egressFetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) }, { maxRedirects: 3 });
    if (!res.ok) {
      await res.body?.cancel();
      throw providerFailure(classifyStatus(res.status), { provider, httpStatus: res.status }, res.headers as unknown as Headers);
    }
    const mimeType = source.mimeType ?? res.headers.get('content-type') ?? undefined;
    const data = await readCapped(res, { maxBytes: mediaMaxBytes(mimeType), timeoutMs: Math.max(1, deadline - Date.now()) });
    return { data, mimeType, sha256: source.sha256 };
  } catch (err) {
    const refused = findEgressRefusal(err);
    if (refused) throw egressFailure(refused);
    if (err instanceof ResponseTooLargeError) throw providerFailure('rejected', { provider, title: err.message });
    if (err instanceof ApplicationFailure) throw err;
    throw providerFailure('unavailable', { provider, title: (err as Error).name });
  }
}
