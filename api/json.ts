import type { FastifyInstance } from 'fastify';
import { AppError } from '../core/platform/errors.js';

/** Deeper than any payload Parley or a provider sends; PostgreSQL's jsonb and recursive walks fail far below 10,000 levels. */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** True when JSON text nests objects or arrays deeper than `limit`: one linear scan, no recursion, before parsing. */
export function exceedsJsonDepth(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return false;
}

export const jsonTooDeep = (): AppError =>
  new AppError(400, 'JSON_TOO_DEEP', `body: JSON nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`);

/** fastify's JSON parser (prototype-poisoning checks included), refusing over-deep bodies before they are parsed. */
export function registerJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (exceedsJsonDepth(text)) return done(jsonTooDeep(), undefined);
    void parse(request, text, done); // synchronous: it answers through `done`
  });
}
