import type { Channel } from '../db/schema.js';
import type { Keyring } from '../platform/crypto.js';
import { channelCredentials, phoneDigits } from './channels.js';
import { baseUrl, classifyStatus, providerFailure, providerFetch, type FailureClass, type ProviderSettings } from './http.js';
import { fetchBytes } from './meta.js';
import type { DownloadedMedia, OutboundTemplate, OutboundText, Provider, SendResult } from './types.js';

/** Twilio error codes that mean "later". */
const THROTTLED = new Set([20429, 63018]);

const wa = (number: string) => `whatsapp:+${phoneDigits(number)}`;

/**
 * Twilio Messages API (form-encoded, HTTP Basic with the account SID and auth token). Twilio's
 * WhatsApp buttons and lists need pre-approved Content templates, so free-form interactive
 * replies go out as numbered text (no sendInteractive).
 */
export class TwilioProvider implements Provider {
  readonly name = 'twilio';

  constructor(
    private readonly keyring: Keyring,
    private readonly settings: ProviderSettings,
  ) {}

  private async post(channel: Channel, to: string, fields: Record<string, string>): Promise<SendResult> {
    const creds = channelCredentials(this.keyring, channel, 'twilio');
    const form = new URLSearchParams({ To: wa(to), From: wa(creds.from), ...fields });
    if (this.settings.publicBaseUrl) form.set('StatusCallback', `${this.settings.publicBaseUrl.replace(/\/+$/, '')}/webhooks/twilio`);
    const res = await providerFetch(
      'twilio',
      `${baseUrl(channel.apiBaseUrl, this.settings.twilioApiUrl)}/2010-04-01/Accounts/${creds.account_sid}/Messages.json`,
      {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${creds.account_sid}:${creds.auth_token}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: form.toString(),
      },
      this.settings.timeoutMs,
    );
    if (res.status >= 200 && res.status < 300) {
      const sid = (res.body as { sid?: string } | undefined)?.sid;
      if (!sid) throw providerFailure('unavailable', { provider: 'twilio', httpStatus: res.status, title: 'response without a sid' });
      return { providerMessageId: sid };
    }
    const body = res.body as { code?: number; message?: string } | undefined;
    let kind: FailureClass = classifyStatus(res.status);
    if (body?.code !== undefined && THROTTLED.has(body.code)) kind = 'throttled';
    throw providerFailure(kind, { provider: 'twilio', httpStatus: res.status, code: body?.code?.toString() }, res.headers);
  }

  sendText(m: OutboundText): Promise<SendResult> {
    return this.post(m.channel, m.to, { Body: m.text });
  }

  /** Templates are Content API items: the template name is the Content SID (HX…). */
  sendTemplate(m: OutboundTemplate): Promise<SendResult> {
    const vars = Object.fromEntries((m.template.parameters ?? []).map((v, i) => [String(i + 1), v]));
    return this.post(m.channel, m.to, {
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
