import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export type FakeMode = 'ok' | 'slow' | 'flaky' | 'down' | 'not_found';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A tenant's system on the far side of the network, as a real HTTP server on a free port:
 * `ok`, `slow` (answers after slowMs), `flaky` (503 twice, then answers), `down` (503 always)
 * and `not_found` (404). `latencyMs` delays every answer (the benchmark's 50 ms source).
 */
export class FakeSource {
  mode: FakeMode = 'ok';
  latencyMs = 0;
  slowMs = 5000;
  readonly seen: SeenRequest[] = [];
  private failures = 0;
  private server?: http.Server;
  url = '';

  constructor(private readonly answer: (req: SeenRequest) => { status: number; body: unknown }) {}

  setMode(mode: FakeMode): void {
    this.mode = mode;
    this.failures = 0;
    this.seen.length = 0;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on(
        'end',
        () =>
          void this.handle(
            { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString() },
            res,
          ),
      );
    });
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  private async handle(req: SeenRequest, res: http.ServerResponse): Promise<void> {
    if (this.seen.length < 10_000) this.seen.push(req);
    const send = (status: number, body: unknown) => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (this.latencyMs) await delay(this.latencyMs);
    switch (this.mode) {
      case 'down':
        return send(503, { error: 'down' });
      case 'not_found':
        return send(404, { error: 'not found' });
      case 'flaky':
        if (this.failures < 2) {
          this.failures++;
          return send(503, { error: 'flaky' });
        }
        break;
      case 'slow':
        await delay(this.slowMs);
        break;
      case 'ok':
        break;
    }
    const { status, body } = this.answer(req);
    send(status, body);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const STOCK: Record<string, { sku: string; name: string; in_stock: boolean; quantity: number }> = {
  'SKU-789': { sku: 'SKU-789', name: 'Blue kettle', in_stock: true, quantity: 14 },
  'SKU 1/2': { sku: 'SKU 1/2', name: 'Half widget', in_stock: false, quantity: 0 },
};

/** Inventory REST API: GET /api/products/{sku}/stock (requires the configured bearer key). */
export function fakeInventory(apiKey: string): FakeSource {
  return new FakeSource((req) => {
    if (req.headers.authorization !== `Bearer ${apiKey}`) return { status: 401, body: { error: 'unauthorized' } };
    const m = /^\/api\/products\/([^/]+)\/stock$/.exec(req.url);
    const item = m ? STOCK[decodeURIComponent(m[1])] : undefined;
    return item ? { status: 200, body: item } : { status: 404, body: { error: 'no such product' } };
  });
}

/** GraphQL API: `query ($sku: String!) { product(sku: $sku) { … } }`, answered from the variables. */
export function fakeGraphql(token: string): FakeSource {
  return new FakeSource((req) => {
    if (req.headers['x-api-token'] !== token) return { status: 401, body: { errors: [{ message: 'unauthorized' }] } };
    const { query, variables } = JSON.parse(req.body || '{}') as { query?: string; variables?: Record<string, string> };
    if (query?.includes('__typename')) return { status: 200, body: { data: { __typename: 'Query' } } };
    if (!query?.includes('product(')) return { status: 200, body: { errors: [{ message: 'Cannot query field' }] } };
    const item = variables?.sku ? STOCK[variables.sku] : undefined;
    return { status: 200, body: { data: { product: item ? { name: item.name, quantity: item.quantity } : null } } };
  });
}
