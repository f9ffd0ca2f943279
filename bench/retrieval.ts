import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createDb, createPool, type Db } from '../core/db/client.js';
import { migrate } from '../core/db/migrate.js';
import { embeddingColumnIsVector, retrieve, type RetrievalMode } from '../core/knowledge/retrieval.js';
import { hashEmbedding } from './lib/hash-embedding.js';
import { benchDatabase } from './lib/database.js';

/**
 * `npm run bench:retrieval`: retrieval quality on bench/data/faq.json (recall@1 and @5 for
 * full text, vector and hybrid, with a deterministic hashed-n-gram embedding) and retrieval
 * latency p50/p99 with 10,000 chunks in one tenant. PostgreSQL from BENCH_DATABASE_URL or
 * TEST_DATABASE_URL (a scratch database is created and dropped), else an embedded server.
 */
const DIM = 256;
const MODEL = 'hash-ngram-256';
const TOTAL_CHUNKS = Number(process.env.BENCH_CHUNKS ?? 10_000);
const LATENCY_QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Faq {
  chunks: { id: string; title: string; content: string }[];
  questions: { question: string; expected: string }[];
}

const cleanups: (() => Promise<unknown>)[] = [];

/** Inserts chunks (one document per 1,000) with their embeddings, in multi-row batches. */
async function load(
  pool: pg.Pool,
  tenant: string,
  chunks: { title: string; content: string; key?: string }[],
): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (let start = 0; start < chunks.length; start += 1000) {
    const slice = chunks.slice(start, start + 1000);
    const doc = await pool.query(
      `INSERT INTO knowledge_documents (tenant_id, kind, title, mime, status, chunks_total, chunks_embedded) VALUES ($1, 'upload', $2, 'text/plain', 'ready', $3, $3) RETURNING id`,
      [tenant, `bench ${start}`, slice.length],
    );
    for (let i = 0; i < slice.length; i += 250) {
      const rows = slice.slice(i, i + 250);
      const values: unknown[] = [];
      const tuples = rows.map((c, j) => {
        values.push(
          tenant,
          doc.rows[0].id,
          start + i + j,
          c.title,
          c.content,
          `{${hashEmbedding(`${c.title}\n${c.content}`, DIM).join(',')}}`,
          MODEL,
        );
        const b = j * 7;
        return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}::real[], $${b + 7})`;
      });
      const inserted = await pool.query<{ id: string }>(
        `INSERT INTO knowledge_chunks (tenant_id, document_id, ord, title, content, embedding, embedding_model) VALUES ${tuples.join(', ')} RETURNING id`,
        values,
      );
      rows.forEach((c, j) => c.key && ids.set(c.key, inserted.rows[j].id));
    }
  }
  return ids;
}

/** Filler chunks: plausible shop-policy sentences from a seeded generator, so they compete for words. */
function filler(count: number): { title: string; content: string }[] {
  let seed = 42;
  const rand = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const subjects = [
    'Orders',
    'Deliveries',
    'Rentals',
    'Repairs',
    'Warranty claims',
    'Gift cards',
    'Accessories',
    'Memberships',
    'Workshops',
    'Exchanges',
    'Invoices',
    'Spare parts',
  ];
  const verbs = ['are processed', 'are confirmed', 'can be changed', 'are reviewed', 'are prepared', 'are scheduled', 'are checked'];
  const when = [
    'within two days',
    'on weekdays',
    'after payment',
    'before noon',
    'by our team',
    'at the warehouse',
    'in the morning',
    'every Tuesday',
  ];
  const extra = [
    'Prices include VAT.',
    'Contact us for details.',
    'Terms apply.',
    'This applies to all branches.',
    'Bring your receipt.',
    'See the website for exceptions.',
    'Members get priority.',
  ];
  return Array.from({ length: count }, (_, i) => {
    const subject = pick(subjects);
    return {
      title: `${subject} note ${i}`,
      content: `${subject} ${pick(verbs)} ${pick(when)}. ${pick(extra)} ${pick(extra)} Reference ${i}.`,
    };
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function quality(db: Db, tenant: string, faq: Faq, ids: Map<string, string>) {
  const results: Record<RetrievalMode, { r1: number; r5: number }> = {
    fts: { r1: 0, r5: 0 },
    vector: { r1: 0, r5: 0 },
    hybrid: { r1: 0, r5: 0 },
  };
  for (const q of faq.questions) {
    const query = { model: MODEL, vector: hashEmbedding(q.question, DIM) };
    for (const mode of ['fts', 'vector', 'hybrid'] as const) {
      const hits = await retrieve(db, { tenantId: tenant, question: q.question, mode, query, limit: 5 });
      const expected = ids.get(q.expected);
      if (hits[0]?.chunkId === expected) results[mode].r1++;
      if (hits.some((h) => h.chunkId === expected)) results[mode].r5++;
    }
  }
  const n = faq.questions.length;
  return Object.fromEntries(
    Object.entries(results).map(([m, r]) => [m, { recall_at_1: +(r.r1 / n).toFixed(3), recall_at_5: +(r.r5 / n).toFixed(3) }]),
  );
}

async function latency(db: Db, tenant: string, faq: Faq, mode: RetrievalMode) {
  const times: number[] = [];
  for (let i = 0; i < LATENCY_QUERIES; i++) {
    const q = faq.questions[i % faq.questions.length].question;
    const query = { model: MODEL, vector: hashEmbedding(q, DIM) };
    const started = performance.now();
    await retrieve(db, { tenantId: tenant, question: q, mode, query, limit: 5 });
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50_ms: +percentile(times, 50).toFixed(1), p99_ms: +percentile(times, 99).toFixed(1) };
}

let code = 0;
try {
  const faq = JSON.parse(await readFile(new URL('./data/faq.json', import.meta.url), 'utf8')) as Faq;
  const { url } = await benchDatabase(cleanups, log);
  const pool = createPool(url, 4);
  cleanups.unshift(() => pool.end());
  await migrate(pool);
  const db = createDb(pool);
  await pool.query(`INSERT INTO tenants (id, name, fallback_message) VALUES ('faq', 'FAQ', '-'), ('big', 'Big', '-')`);
  const vectorPath = (await embeddingColumnIsVector(db)) ? 'pgvector' : 'exact cosine over real[] (no pgvector)';

  const faqChunks = faq.chunks.map((c) => ({ key: c.id, title: c.title, content: c.content }));
  const small = await load(pool, 'faq', faqChunks);
  log(`quality: ${faq.questions.length} questions over ${faq.chunks.length} chunks`);
  const smallQuality = await quality(db, 'faq', faq, small);

  log(`loading ${TOTAL_CHUNKS} chunks (${DIM}-dim) for latency`);
  const big = await load(pool, 'big', [...faqChunks, ...filler(TOTAL_CHUNKS - faqChunks.length)]);
  await pool.query('ANALYZE knowledge_chunks');
  const bigQuality = await quality(db, 'big', faq, big);
  const lat = {
    fts: await latency(db, 'big', faq, 'fts'),
    vector: await latency(db, 'big', faq, 'vector'),
    hybrid: await latency(db, 'big', faq, 'hybrid'),
  };

  const report = {
    vector_path: vectorPath,
    embedding: `${MODEL} (deterministic local)`,
    questions: faq.questions.length,
    [`quality_${faq.chunks.length}_chunks`]: smallQuality,
    [`quality_${TOTAL_CHUNKS}_chunks`]: bigQuality,
    [`latency_${TOTAL_CHUNKS}_chunks_${LATENCY_QUERIES}_queries`]: lat,
  };
  console.log(JSON.stringify(report, null, 2));
} catch (err) {
  code = 1;
  log(`failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
}
process.exit(code);
