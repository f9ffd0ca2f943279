import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hashEmbedding } from '../../bench/lib/hash-embedding.js';

/** What a scripted chat turn answers. */
export type ChatScript =
  | { content: string; usage?: { prompt_tokens: number; completion_tokens: number } }
  | { toolCalls: { name: string; arguments: Record<string, unknown> }[] }
  | { status: number }
  | { hang: true };

export interface RecordedRequest {
  path: string;
  authorization: string | undefined;
  body: any;
}

/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 (a free port): `/v1/chat/completions`
 * answers from a scripted function of the request, `/v1/embeddings` with a deterministic
 * hashed embedding (or a scripted status). Every request is recorded.
 */
export class FakeOpenAi {
  readonly requests: RecordedRequest[] = [];
  chat: (body: any) => ChatScript = () => ({ content: JSON.stringify({ answer: 'ok', confidence: 0.9, sources: [] }) });
  embeddingStatus: (body: any) => number = () => 200;
  private server?: Server;
  private hanging = new Set<ServerResponse>();
  baseUrl = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
    return this;
  }

  /** Requests of one kind, optionally only those mentioning a text anywhere. */
  chatRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path.endsWith('/chat/completions'));
  }

  allText(): string {
    return this.requests.map((r) => JSON.stringify(r.body)).join('\n');
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    const path = (req.url ?? '').split('?')[0];
    this.requests.push({ path, authorization: req.headers.authorization, body });
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };

    if (path === '/v1/embeddings') {
      const status = this.embeddingStatus(body);
      if (status !== 200) return send(status, { error: { message: 'scripted failure', type: 'server_error' } });
      const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input];
      return send(200, {
        object: 'list',
        model: body.model,
        data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: hashEmbedding(text, 64) })),
        usage: { prompt_tokens: inputs.reduce((n, t) => n + Math.ceil(t.length / 4), 0), total_tokens: 0 },
      });
    }
    if (path !== '/v1/chat/completions') return send(404, { error: { message: 'not found' } });

    const script = this.chat(body);
    if ('hang' in script) {
      this.hanging.add(res);
      return;
    }
    if ('status' in script) return send(script.status, { error: { message: 'scripted failure', type: 'server_error' } });
    const message =
      'toolCalls' in script
        ? {
            role: 'assistant',
            content: null,
            tool_calls: script.toolCalls.map((c, i) => ({
              id: `call_${this.requests.length}_${i}`,
              type: 'function',
              function: { name: c.name, arguments: JSON.stringify(c.arguments) },
            })),
          }
        : { role: 'assistant', content: script.content };
    const usage = 'content' in script && script.usage ? script.usage : { prompt_tokens: 100, completion_tokens: 20 };
    send(200, {
      id: `chatcmpl-${this.requests.length}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message, finish_reason: 'toolCalls' in script ? 'tool_calls' : 'stop' }],
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    });
  }
}

/** The knowledge excerpts message of a chat request, and the label of the excerpt containing `text`. */
export function labelOf(body: any, text: string): string | undefined {
  const excerpts: string =
    body.messages.find((m: any) => m.role === 'system' && String(m.content).startsWith('Knowledge excerpts'))?.content ?? '';
  const line = excerpts.split('\n').find((l) => l.toLowerCase().includes(text.toLowerCase()));
  return line?.match(/^\[(S\d+)\]/)?.[1];
}

export function lastUserText(body: any): string {
  const users = body.messages.filter((m: any) => m.role === 'user');
  return String(users[users.length - 1]?.content ?? '');
}
