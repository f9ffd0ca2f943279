import type { Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { channelCredentials, phoneDigits } from './channels.js';
import { baseUrl, classifyStatus, providerFailure, providerFetch, type FailureClass, type ProviderSettings } from './http.js';
import { fetchBytes } from './meta.js';
import type { DownloadedMedia, OutboundTemplate, OutboundText, Provider, SendResult, SentQuery } from './types.js';

/** Twilio error codes that mean "later". */
const THROTTLED = new Set([20429, 63018]);
/** How far the provider's clock may be behind ours when matching a message it took. */
const CLOCK_SKEW_MS = 60_000;
/** The newest messages between the two numbers read when reconciling: an unknown send is recent. */
const LOOKUP_PAGE_SIZE = 20;

/** The query parameter of the StatusCallback URL that carries the send key. */
export const TWILIO_SEND_KEY_PARAM = 'send_key';

const wa = (number: string) => `whatsapp:+${phoneDigits(number)}`;

/**
 * Twilio Messages API (form-encoded, HTTP Basic with the account SID and auth token). Twilio's
 * WhatsApp buttons and lists need pre-approved Content templates, so free-form interactive
 * replies go out as numbered text (no sendInteractive). An unknown send is looked up in Twilio's
 * Messages list; its StatusCallback URL also carries the send key.
 */
export class TwilioProvider implements Provider {
  readonly name = 'twilio';
  readonly reconcileBy = 'lookup';

  constructor(
    private readonly keyring: Keyring,
    private readonly settings: ProviderSettings,
  ) {}

  private messagesUrl(channel: Channel, accountSid: string): string {
    return `${baseUrl(channel.apiBaseUrl, this.settings.twilioApiUrl)}/2010-04-01/Accounts/${accountSid}/Messages.json`;
  }

  private auth(creds: { account_sid: string; auth_token: string }): string {
    return `Basic ${Buffer.from(`${creds.account_sid}:${creds.auth_token}`).toString('base64')}`;
  }

  private async post(channel: Channel, to: string, key: string, fields: Record<string, string>): Promise<SendResult> {
    const creds = channelCredentials(this.keyring, channel, 'twilio');
    const form = new URLSearchParams({ To: wa(to), From: wa(creds.from), ...fields });
    if (this.settings.publicBaseUrl) {
      const callback = `${this.settings.publicBaseUrl.replace(/\/+$/, '')}/webhooks/twilio`;
      form.set('StatusCallback', `${callback}?${new URLSearchParams({ [TWILIO_SEND_KEY_PARAM]: key })}`);
    }
    const res = await providerFetch(
      'twilio',
      this.messagesUrl(channel, creds.account_sid),
      {
        method: 'POST',
        headers: { authorization: this.auth(creds), 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      },
      this.settings.timeoutMs,
    );
    if (res.status >= 200 && res.status < 300) {
      const sid = (res.body as { sid?: string } | undefined)?.sid;
      if (!sid) throw providerFailure('unknown', { provider: 'twilio', httpStatus: res.status, title: 'response without a sid' });
      return { providerMessageId: sid };
    }
    const body = res.body as { code?: number; message?: string } | undefined;
    let kind: FailureClass = classifyStatus(res.status, body?.code !== undefined);
    if (body?.code !== undefined && THROTTLED.has(body.code)) kind = 'throttled';
    throw providerFailure(kind, { provider: 'twilio', httpStatus: res.status, code: body?.code?.toString() }, res.headers);
  }

  sendText(m: OutboundText): Promise<SendResult> {
    return this.post(m.channel, m.to, m.idempotencyKey, { Body: m.text });
  }

  /**
   * Reads the newest messages from the channel's number to the customer (Twilio lists newest
   * first): those created since the unknown send began with the same body (any body for a
   * template, whose text Twilio renders).
   */
  async findSent(q: SentQuery): Promise<string[]> {
    const creds = channelCredentials(this.keyring, q.channel, 'twilio');
    const filter = new URLSearchParams({ To: wa(q.to), From: wa(creds.from), PageSize: String(LOOKUP_PAGE_SIZE) });
    const res = await providerFetch(
      'twilio',
      `${this.messagesUrl(q.channel, creds.account_sid)}?${filter}`,
      { method: 'GET', headers: { authorization: this.auth(creds) } },
      this.settings.timeoutMs,
    );
    if (res.status !== 200) {
      const body = res.body as { code?: number } | undefined;
      throw providerFailure(
        classifyStatus(res.status),
        { provider: 'twilio', httpStatus: res.status, code: body?.code?.toString() },
        res.headers,
      );
    }
    const messages = (res.body as { messages?: { sid?: string; body?: string; date_created?: string }[] } | undefined)?.messages ?? [];
    const since = q.since.getTime() - CLOCK_SKEW_MS;
    return messages
      .filter((m) => Date.parse(m.date_created ?? '') >= since && (q.text === undefined || m.body === q.text))
      .flatMap((m) => (m.sid ? [m.sid] : []));
  }

  /** Templates are Content API items: the template name is the Content SID (HX…). */
  sendTemplate(m: OutboundTemplate): Promise<SendResult> {
    const vars = Object.fromEntries((m.template.parameters ?? []).map((v, i) => [String(i + 1), v]));
    return this.post(m.channel, m.to, m.idempotencyKey, {
      ContentSid: m.template.name,
      ...(m.template.parameters?.length ? { ContentVariables: JSON.stringify(vars) } : {}),
    });
  }

  downloadMedia(channel: Channel, url: string): Promise<DownloadedMedia> {
    const creds = channelCredentials(this.keyring, channel, 'twilio');
    const auth = { authorization: `Basic ${Buffer.from(`${creds.account_sid}:${creds.auth_token}`).toString('base64')}` };
    return fetchBytes('twilio', url, auth, this.settings.timeoutMs, {
      hosts: ['api.twilio.com', new URL(baseUrl(channel.apiBaseUrl, this.settings.twilioApiUrl)).host],
    });
  }
}
