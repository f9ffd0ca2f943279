import type { Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { channelCredentials, phoneDigits } from './channels.js';
import { baseUrl, classifyStatus, providerFailure, providerFetch, type FailureClass, type ProviderSettings } from './http.js';
import type { DownloadedMedia, OutboundInteractive, OutboundTemplate, OutboundText, Provider, SendResult } from './types.js';

/** Graph API error codes that mean "later", not "never". */
const THROTTLED = new Set([4, 80007, 130429, 131056]);
const UNAVAILABLE = new Set([1, 2, 131000, 131016]);

interface GraphError {
  error?: { code?: number; error_subcode?: number; type?: string; title?: string; message?: string };
}

/** WhatsApp Cloud API: POST /{version}/{phone_number_id}/messages with the channel's bearer token. */
export class MetaProvider implements Provider {
  readonly name = 'meta';

  constructor(
    private readonly keyring: Keyring,
    private readonly settings: ProviderSettings,
  ) {}

  private base(channel: Channel): string {
    return `${baseUrl(channel.apiBaseUrl, this.settings.metaGraphUrl)}/${this.settings.metaApiVersion}`;
  }

  private async post(channel: Channel, to: string, content: Record<string, unknown>): Promise<SendResult> {
    const creds = channelCredentials(this.keyring, channel, 'meta');
    const res = await providerFetch(
      'meta',
      `${this.base(channel)}/${creds.phone_number_id}/messages`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${creds.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messaging_product: 'whatsapp', recipient_type: 'individual', to: phoneDigits(to), ...content }),
      },
      this.settings.timeoutMs,
    );
    if (res.status >= 200 && res.status < 300) {
      const id = (res.body as { messages?: { id?: string }[] } | undefined)?.messages?.[0]?.id;
      if (!id) throw providerFailure('unavailable', { provider: 'meta', httpStatus: res.status, title: 'response without a message id' });
      return { providerMessageId: id };
    }
    throw this.failure(res.status, res.body as GraphError, res.headers);
  }

  private failure(status: number, body: GraphError | undefined, headers: Headers) {
    const code = body?.error?.code;
    let kind: FailureClass = classifyStatus(status);
    if (code !== undefined && THROTTLED.has(code)) kind = 'throttled';
    else if (code !== undefined && UNAVAILABLE.has(code)) kind = 'unavailable';
    return providerFailure(
      kind,
      { provider: 'meta', httpStatus: status, code: code?.toString(), title: body?.error?.title ?? body?.error?.type },
      headers,
    );
  }

  sendText(m: OutboundText): Promise<SendResult> {
    return this.post(m.channel, m.to, { type: 'text', text: { preview_url: false, body: m.text } });
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
    return this.post(m.channel, m.to, { type: 'interactive', interactive });
  }

  sendTemplate(m: OutboundTemplate): Promise<SendResult> {
    const { name, language, parameters } = m.template;
    return this.post(m.channel, m.to, {
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
    return fetchBytes('meta', info.url, auth, this.settings.timeoutMs, info.mime_type, info.sha256);
  }
}

/** Downloads a media URL; the provider's auth header goes along. */
export async function fetchBytes(
  provider: string,
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
  mimeType?: string,
  sha256?: string,
): Promise<DownloadedMedia> {
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw providerFailure('unavailable', { provider, title: (err as Error).name });
  }
  if (!res.ok) throw providerFailure(classifyStatus(res.status), { provider, httpStatus: res.status }, res.headers);
  return { data: Buffer.from(await res.arrayBuffer()), mimeType: mimeType ?? res.headers.get('content-type') ?? undefined, sha256 };
}
