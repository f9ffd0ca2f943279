import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface FakeRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: any;
  raw: string;
  at: number;
  /** What the fake answered: the raw provider message id Parley stores only as a hash. */
  answer?: FakeAnswer;
}

export interface FakeAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A message the fake provider took: what the customer gets. */
export interface AcceptedMessage {
  /** The provider's id for it (Meta wamid, Twilio SID, Infobip messageId). */
  id: string;
  /** Recipient digits. */
  to: string;
  from?: string;
  body?: string;
  /** Meta's biz_opaque_callback_data as sent. */
  callbackData?: string;
  createdAt: Date;
}

/** A send the fake took and holds the answer of until `release()`. */
export interface Held {
  accepted: Promise<{ request: FakeRequest; message: AcceptedMessage }>;
  release(): void;
}

/**
 * A provider API on 127.0.0.1 that checks what the real one checks (auth header, body shape)
 * and answers like it. Tests queue failures (`failNext`) and hooks (`beforeAnswer`) to script
 * 429/500/400 answers or a status callback that beats the response; `holdNext` keeps a taken
 * send's answer back (a provider that accepts and answers late, or a worker killed in between);
 * `refuseConnections` closes the port. Every message taken is in `accepted`: Twilio's Messages
 * list answers from it, and Infobip takes a repeat of a messageId it has as that message.
 */
export class FakeProvider {
  readonly requests: FakeRequest[] = [];
  readonly accepted: AcceptedMessage[] = [];
  private readonly queued: FakeAnswer[] = [];
  private readonly holds: {
    to?: string;
    take(m: { request: FakeRequest; message: AcceptedMessage }): void;
    released: Promise<void>;
  }[] = [];
  beforeAnswer?: (req: FakeRequest, answer: FakeAnswer) => Promise<void>;
  private server!: http.Server;
  url = '';
  private port = 0;
  private seq = 0;

  constructor(
    readonly kind: 'meta' | 'twilio' | 'infobip',
    private readonly expected: { token: string; accountSid?: string },
  ) {}

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void this.handle(req, Buffer.concat(chunks).toString('utf8')).then((a) => {
          res.writeHead(a.status, { 'content-type': Buffer.isBuffer(a.body) ? 'image/jpeg' : 'application/json', ...(a.headers ?? {}) });
          res.end(Buffer.isBuffer(a.body) ? a.body : a.body === undefined ? '' : JSON.stringify(a.body));
        });
      });
    });
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  /** Until `start()` again, connections to the port are refused: no request reaches the provider. */
  async refuseConnections(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Holds the next send the fake takes (for recipient `to`, digits or +E.164, when given). */
  holdNext(to?: string): Held {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let take!: (m: { request: FakeRequest; message: AcceptedMessage }) => void;
    const accepted = new Promise<{ request: FakeRequest; message: AcceptedMessage }>((resolve) => (take = resolve));
    this.holds.push({ to: to?.replace(/\D/g, ''), take, released });
    return { accepted, release };
  }

  /** Messages taken for a recipient (digits or +E.164): what that customer got. */
  deliveredTo(to: string): AcceptedMessage[] {
    const digits = to.replace(/\D/g, '');
    return this.accepted.filter((m) => m.to === digits);
  }

  failNext(...answers: FakeAnswer[]): void {
    this.queued.push(...answers);
  }

  /** Message sends (not media downloads), in arrival order. */
  sends(): FakeRequest[] {
    return this.requests.filter((r) => r.method === 'POST');
  }

  /** The provider message id the fake answered the first send matching `match` with. */
  sentId(match: (r: FakeRequest) => boolean): string | undefined {
    const body = this.sends().find(match)?.answer?.body as
      { messages?: { id?: string; messageId?: string }[]; sid?: string; messageId?: string } | undefined;
    return body?.messages?.[0]?.id ?? body?.sid ?? body?.messageId ?? body?.messages?.[0]?.messageId;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, raw: string): Promise<FakeAnswer> {
    const path = req.url ?? '/';
    let body: any = raw;
    const type = req.headers['content-type'] ?? '';
    if (type.includes('json') && raw) body = JSON.parse(raw);
    if (type.includes('x-www-form-urlencoded')) body = Object.fromEntries(new URLSearchParams(raw));
    const request: FakeRequest = { method: req.method ?? 'GET', path, headers: req.headers, body, raw, at: performance.now() };
    this.requests.push(request);
    const problem = this.check(request);
    if (problem) return problem;
    if (
      this.kind === 'twilio' &&
      request.method === 'GET' &&
      request.path.startsWith(`/2010-04-01/Accounts/${this.expected.accountSid}/Messages.json`)
    ) {
      return this.twilioList(request);
    }
    const answer = this.queued.shift() ?? this.success(request);
    if (this.beforeAnswer && answer.status < 300) await this.beforeAnswer(request, answer);
    request.answer = answer;
    if (request.method === 'POST' && answer.status < 300) {
      const message = this.take(request, answer);
      const i = this.holds.findIndex((h) => !h.to || h.to === message.to);
      const [hold] = i >= 0 ? this.holds.splice(i, 1) : [];
      if (hold) {
        hold.take({ request, message });
        await hold.released;
      }
    }
    return answer;
  }

  /** Records a taken send, once per message: Infobip takes a repeat of a messageId it has as that message. */
  private take(r: FakeRequest, answer: FakeAnswer): AcceptedMessage {
    const b = r.body;
    let message: AcceptedMessage;
    if (this.kind === 'meta') {
      const a = answer.body as { messages: { id: string }[] };
      message = { id: a.messages[0].id, to: b.to, body: b.text?.body, callbackData: b.biz_opaque_callback_data, createdAt: new Date() };
    } else if (this.kind === 'twilio') {
      const a = answer.body as { sid: string };
      message = { id: a.sid, to: b.To.replace(/\D/g, ''), from: b.From, body: b.Body, createdAt: new Date() };
    } else {
      const envelope = b?.messages?.[0] ?? b;
      const known = this.accepted.find((m) => m.id === envelope.messageId);
      if (known) return known;
      message = { id: envelope.messageId, to: envelope.to, body: b.content?.text, createdAt: new Date() };
    }
    this.accepted.push(message);
    return message;
  }

  /** Twilio's Messages list: filtered by To and From, newest first, PageSize at most. */
  private twilioList(r: FakeRequest): FakeAnswer {
    const q = new URL(r.path, 'http://fake').searchParams;
    const to = (q.get('To') ?? '').replace(/\D/g, '');
    const from = q.get('From');
    const size = Number(q.get('PageSize') ?? 50);
    const messages = this.accepted
      .filter((m) => (!to || m.to === to) && (!from || m.from === from))
      .reverse()
      .slice(0, size)
      .map((m) => ({
        sid: m.id,
        to: `whatsapp:+${m.to}`,
        from: m.from,
        body: m.body,
        status: 'sent',
        direction: 'outbound-api',
        date_created: m.createdAt.toUTCString().replace('GMT', '+0000'),
      }));
    return { status: 200, body: { messages, page: 0, page_size: size } };
  }

  private check(r: FakeRequest): FakeAnswer | undefined {
    const auth = r.headers.authorization ?? '';
    if (this.kind === 'meta') {
      if (auth !== `Bearer ${this.expected.token}`)
        return { status: 401, body: { error: { code: 190, type: 'OAuthException', message: 'Invalid OAuth access token' } } };
      if (r.method !== 'POST') return undefined;
      if (!/^\/v\d+\.\d+\/\d+\/messages$/.test(r.path)) return { status: 404, body: { error: { code: 100, message: 'Unknown path' } } };
      const b = r.body;
      const ok =
        b?.messaging_product === 'whatsapp' &&
        /^\d+$/.test(b.to) &&
        ((b.type === 'text' && typeof b.text?.body === 'string') ||
          (b.type === 'template' && typeof b.template?.name === 'string' && typeof b.template?.language?.code === 'string') ||
          (b.type === 'interactive' && ['button', 'list'].includes(b.interactive?.type) && typeof b.interactive?.body?.text === 'string'));
      if (!ok) return { status: 400, body: { error: { code: 100, type: 'OAuthException', message: 'Invalid parameter' } } };
    } else if (this.kind === 'twilio') {
      const expected = `Basic ${Buffer.from(`${this.expected.accountSid}:${this.expected.token}`).toString('base64')}`;
      if (auth !== expected) return { status: 401, body: { code: 20003, message: 'Authenticate', status: 401 } };
      if (r.method !== 'POST') return undefined;
      if (r.path !== `/2010-04-01/Accounts/${this.expected.accountSid}/Messages.json`)
        return { status: 404, body: { code: 20404, status: 404 } };
      const b = r.body;
      if (!/^whatsapp:\+\d+$/.test(b?.To ?? '') || !/^whatsapp:\+\d+$/.test(b?.From ?? '') || !(b.Body || b.ContentSid)) {
        return { status: 400, body: { code: 21211, message: "Invalid 'To' Phone Number", status: 400 } };
      }
    } else {
      if (auth !== `App ${this.expected.token}`)
        return { status: 401, body: { requestError: { serviceException: { messageId: 'UNAUTHORIZED', text: 'Invalid login details' } } } };
      if (r.method !== 'POST') return undefined;
      const b = r.body;
      const envelope = b?.messages?.[0] ?? b;
      const ok =
        /^\d+$/.test(envelope?.from ?? '') &&
        /^\d+$/.test(envelope?.to ?? '') &&
        ((r.path === '/whatsapp/1/message/text' && typeof b.content?.text === 'string') ||
          (r.path === '/whatsapp/1/message/interactive/buttons' && Array.isArray(b.content?.action?.buttons)) ||
          (r.path === '/whatsapp/1/message/interactive/list' && Array.isArray(b.content?.action?.sections)) ||
          (r.path === '/whatsapp/1/message/template' && typeof envelope.content?.templateName === 'string'));
      if (!ok) return { status: 400, body: { requestError: { serviceException: { messageId: 'BAD_REQUEST', text: 'Bad request' } } } };
    }
    return undefined;
  }

  private success(r: FakeRequest): FakeAnswer {
    this.seq++;
    if (this.kind === 'meta') {
      if (r.method === 'GET' && r.path.startsWith('/bytes/')) return { status: 200, body: Buffer.from(`media-bytes:${r.path.slice(7)}`) };
      if (r.method === 'GET')
        return {
          status: 200,
          body: { url: `${this.url}/bytes/${r.path.split('/').pop()}`, mime_type: 'image/jpeg', id: r.path.split('/').pop() },
        };
      return {
        status: 200,
        body: {
          messaging_product: 'whatsapp',
          contacts: [{ input: r.body.to, wa_id: r.body.to }],
          messages: [{ id: `wamid.${randomBytes(8).toString('hex')}` }],
        },
      };
    }
    if (this.kind === 'twilio') return { status: 201, body: { sid: `SM${randomBytes(16).toString('hex')}`, status: 'queued' } };
    const envelope = r.body?.messages?.[0] ?? r.body;
    const status = { groupId: 1, groupName: 'PENDING', id: 7, name: 'PENDING_ENROUTE', description: 'Message sent to next instance' };
    if (r.body?.messages) return { status: 200, body: { messages: [{ to: envelope.to, messageId: envelope.messageId, status }] } };
    return { status: 200, body: { to: envelope.to, messageCount: 1, messageId: envelope.messageId, status } };
  }
}

/** The body of `POST …/channels` for a Meta number on a fake Graph API at `apiBaseUrl` (a fresh phone number id each call). */
export function metaChannelBody(apiBaseUrl: string, extra: Record<string, unknown> = {}) {
  return {
    provider: 'meta',
    credentials: {
      phone_number_id: String(randomBytes(4).readUInt32BE()),
      access_token: 'meta-token',
      app_secret: 's',
      verify_token: randomBytes(6).toString('hex'),
    },
    api_base_url: apiBaseUrl,
    ...extra,
  };
}
