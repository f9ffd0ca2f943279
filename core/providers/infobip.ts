import type { Channel } from '../db/schema.js';
import { sha256, type Keyring } from '../platform/crypto.js';
import { channelCredentials, phoneDigits } from './channels.js';
import { baseUrl, classifyStatus, providerFailure, providerFetch, type ProviderSettings } from './http.js';
import { fetchBytes } from './meta.js';
import type { DownloadedMedia, OutboundInteractive, OutboundTemplate, OutboundText, Provider, SendResult } from './types.js';

/**
 * Infobip WhatsApp API (`Authorization: App <api key>`). We choose the message id ourselves,
 * derived from the reply's idempotency key, so a delivery report can be matched even when it
 * arrives before the send's own response, and so that a resend after an unknown outcome carries
 * the same id and is recognised by Infobip as the message it already has.
 */
export class InfobipProvider implements Provider {
  readonly name = 'infobip';
  readonly reconcileBy = 'resend';

  constructor(
    private readonly keyring: Keyring,
    private readonly settings: ProviderSettings,
  ) {}

  static messageId(idempotencyKey: string): string {
    return `prl-${sha256(idempotencyKey).slice(0, 32)}`;
  }

  private async post(channel: Channel, path: string, payload: Record<string, unknown>, messageId: string): Promise<SendResult> {
    const creds = channelCredentials(this.keyring, channel, 'infobip');
    const res = await providerFetch(
      'infobip',
      `${baseUrl(channel.apiBaseUrl, this.settings.infobipApiUrl)}${path}`,
      {
        method: 'POST',
        headers: { authorization: `App ${creds.api_key}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(payload),
      },
      this.settings.timeoutMs,
    );
    if (res.status >= 200 && res.status < 300) {
      const body = res.body as { messageId?: string; messages?: { messageId?: string }[] } | undefined;
      return { providerMessageId: body?.messageId ?? body?.messages?.[0]?.messageId ?? messageId };
    }
    const error = (res.body as { requestError?: { serviceException?: { messageId?: string } } } | undefined)?.requestError;
    const code = error?.serviceException?.messageId;
    throw providerFailure(
      classifyStatus(res.status, error !== undefined),
      { provider: 'infobip', httpStatus: res.status, code },
      res.headers,
    );
  }

  private envelope(m: { channel: Channel; to: string; idempotencyKey: string }) {
    const creds = channelCredentials(this.keyring, m.channel, 'infobip');
    return { from: phoneDigits(creds.sender), to: phoneDigits(m.to), messageId: InfobipProvider.messageId(m.idempotencyKey) };
  }

  sendText(m: OutboundText): Promise<SendResult> {
    const env = this.envelope(m);
    return this.post(m.channel, '/whatsapp/1/message/text', { ...env, content: { text: m.text } }, env.messageId);
  }

  sendInteractive(m: OutboundInteractive): Promise<SendResult> {
    const env = this.envelope(m);
    const i = m.interactive;
    if (i.kind === 'buttons') {
      return this.post(
        m.channel,
        '/whatsapp/1/message/interactive/buttons',
        {
          ...env,
          content: { body: { text: i.body }, action: { buttons: i.buttons.map((b) => ({ type: 'REPLY', id: b.id, title: b.title })) } },
        },
        env.messageId,
      );
    }
    return this.post(
      m.channel,
      '/whatsapp/1/message/interactive/list',
      {
        ...env,
        content: {
          body: { text: i.body },
          action: {
            title: i.button,
            sections: i.sections.map((s) => ({ ...(s.title ? { title: s.title } : {}), rows: s.rows.map((r) => ({ ...r })) })),
          },
        },
      },
      env.messageId,
    );
  }

  sendTemplate(m: OutboundTemplate): Promise<SendResult> {
    const env = this.envelope(m);
    return this.post(
      m.channel,
      '/whatsapp/1/message/template',
      {
        messages: [
          {
            ...env,
            content: {
              templateName: m.template.name,
              templateData: { body: { placeholders: m.template.parameters ?? [] } },
              language: m.template.language,
            },
          },
        ],
      },
      env.messageId,
    );
  }

  downloadMedia(channel: Channel, url: string): Promise<DownloadedMedia> {
    const creds = channelCredentials(this.keyring, channel, 'infobip');
    return fetchBytes('infobip', url, { authorization: `App ${creds.api_key}` }, this.settings.timeoutMs, {
      // The account's own API host (xyz.api.infobip.com) serves its media.
      hosts: [new URL(baseUrl(channel.apiBaseUrl, this.settings.infobipApiUrl)).host],
    });
  }
}
