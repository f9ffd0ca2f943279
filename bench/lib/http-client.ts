import http from 'node:http';

export type JsonCall = (path: string, key: string, body: unknown, method?: string) => Promise<{ status: number; body: any }>;

export interface JsonClient {
  call: JsonCall;
  /** Closes the kept-alive sockets. */
  close(): void;
}

/**
 * A JSON client on node:http with keep-alive rather than fetch: the load generator shares the
 * machine with what it measures, and fetch's streams cost it about twice the CPU per request.
 */
export function jsonClient(baseUrl: string): JsonClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const call: JsonCall = (path, key, body, method = 'POST') =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = http.request(
        baseUrl + path,
        {
          method,
          agent,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return { call, close: () => agent.destroy() };
}
