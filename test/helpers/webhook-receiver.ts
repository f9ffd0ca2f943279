import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; type: string; created_at: string; tenant_id: string; data: Record<string, any> };
  at: number;
  /** What the receiver answered. */
  status: number;
}

/**
 * A tenant's webhook receiver as a real local HTTP server: it records every request and answers
 * what `respond` says (a status, with optional headers), 200 by default; status 0 never answers
 * (a receiver that hangs).
 */
export class WebhookReceiver {
  readonly requests: Received[] = [];
  respond: (r: Received) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 });
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const received: Received = { headers: req.headers, body, json: JSON.parse(body), at: Date.now(), status: 0 };
        this.requests.push(received);
        const { status, headers } = this.respond(received);
        received.status = status;
        if (status !== 0) res.writeHead(status, headers).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** Requests answered 2xx: what the receiver accepted. */
  get accepted(): Received[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  ofType(type: string): Received[] {
    return this.requests.filter((r) => r.json.type === type);
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
