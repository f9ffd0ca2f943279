import { createWriteStream, type WriteStream } from 'node:fs';
import { Writable, type Readable } from 'node:stream';

const LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };
const NOTABLE = /"level":[456]0[,}]/;
/** The same notice is shown at most once in this period; the file has every line. */
const REPEAT_MS = 60_000;

interface Entry {
  level: number;
  name?: string;
  msg?: string;
  method?: string;
  route?: string | null;
  status?: number;
  code?: string;
  activityType?: string;
  error?: { code?: string };
  err?: { code?: string };
}

/** One short line for the terminal, e.g. `warn (api): request POST /messages/send → 502 (PROVIDER_FAILED)`. */
function notice(e: Entry): string {
  const parts = [`${LEVELS[e.level] ?? 'error'} (${e.name ?? 'parley'}): ${e.msg ?? ''}`];
  if (e.method) parts.push(`${e.method} ${e.route ?? '(no route)'} → ${e.status}`);
  if (e.activityType) parts.push(`in ${e.activityType}`);
  const code = e.code ?? e.error?.code ?? e.err?.code;
  if (code) parts.push(`(${code})`);
  return parts.join(' ');
}

/**
 * `npm start`'s log: every line of the API (this process) and the worker (a child) goes to one
 * file as it is, JSON from pino; warnings and errors also become a short terminal line each, so
 * the terminal keeps what was printed at start-up in view.
 */
export class LogFile {
  private readonly out: WriteStream;
  private readonly shown = new Map<string, { at: number; hidden: number }>();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly notify: (line: string) => void,
  ) {
    this.out = createWriteStream(path, { flags: 'a' });
  }

  /** A destination for a pino logger in this process. */
  stream(): Writable {
    const lines = this.splitter();
    return new Writable({
      write: (chunk: Buffer | string, _enc, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
  }

  /** A child's stdout or stderr. */
  follow(from: Readable): void {
    const lines = this.splitter();
    from.setEncoding('utf8');
    from.on('data', (text: string) => lines.push(text));
    from.on('end', () => lines.end());
  }

  close(): Promise<void> {
    // A child's last lines may still arrive while everything stops; they are dropped, not an error.
    this.closed = true;
    return new Promise((resolve) => this.out.end(resolve));
  }

  private splitter(): { push(text: string): void; end(): void } {
    let rest = '';
    return {
      push: (text) => {
        const parts = (rest + text).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) this.line(line);
      },
      end: () => {
        if (rest) this.line(rest);
        rest = '';
      },
    };
  }

  private line(line: string): void {
    if (this.closed) return;
    this.out.write(line + '\n');
    if (!NOTABLE.test(line)) return;
    let entry: Entry;
    try {
      entry = JSON.parse(line) as Entry;
    } catch {
      return;
    }
    const text = notice(entry);
    const now = Date.now();
    const seen = this.shown.get(text);
    if (seen && now - seen.at < REPEAT_MS) {
      seen.hidden++;
      return;
    }
    this.notify(seen?.hidden ? `${text} (and ${seen.hidden} more like it)` : text);
    this.shown.set(text, { at: now, hidden: 0 });
  }
}
