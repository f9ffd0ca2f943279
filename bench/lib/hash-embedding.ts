import { createHash } from 'node:crypto';

/**
 * A deterministic local embedding for benchmarks and tests: hashed character trigrams of
 * each lower-cased word (with word boundaries) plus the words themselves, signed by a second
 * hash bit to spread collisions, L2-normalised. No model, no network, stable across runs.
 */
export function hashEmbedding(text: string, dim = 256): number[] {
  const v = new Array<number>(dim).fill(0);
  const words =
    text
      .toLowerCase()
      .normalize('NFKD')
      .match(/[\p{L}\p{N}]+/gu) ?? [];
  const add = (feature: string, weight: number) => {
    const h = createHash('md5').update(feature).digest();
    const index = h.readUInt32LE(0) % dim;
    v[index] += (h[4] & 1 ? 1 : -1) * weight;
  };
  for (const word of words) {
    if (STOP.has(word)) continue;
    add(`w:${word}`, 2);
    const padded = `^${word}$`;
    for (let i = 0; i + 3 <= padded.length; i++) add(`g:${padded.slice(i, i + 3)}`, 1);
  }
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? v : v.map((x) => x / norm);
}

const STOP = new Set(
  'a an and are as at be but by can do does for from have how i if in is it me my of on or our so that the this to was we what when where which who why will with you your'.split(
    ' ',
  ),
);
