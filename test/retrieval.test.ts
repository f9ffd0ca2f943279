import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { maskPii } from '../core/ai/mask.js';
import { leaksInstructions, parseAnswer } from '../core/ai/prompt.js';
import { createDb, createPool, type Db } from '../core/db/client.js';
import { migrate } from '../core/db/migrate.js';
import { chunkText, storeEmbeddings } from '../core/knowledge/documents.js';
import { normalize } from '../core/ai/llm.js';
import { embeddingColumnIsVector, retrieve } from '../core/knowledge/retrieval.js';
import { createTestDatabase } from './helpers/harness.js';

describe('retrieval: full text, exact cosine over arrays, fusion', () => {
  let database: { url: string; drop(): Promise<void> };
  let pool: pg.Pool;
  let db: Db;
  const ids: Record<string, string> = {};

  async function addChunk(tenant: string, key: string, title: string, content: string, vector: number[]) {
    const doc = await pool.query(
      `INSERT INTO knowledge_documents (tenant_id, kind, title, mime, status, chunks_total) VALUES ($1, 'upload', $2, 'text/plain', 'embedding', 1) RETURNING id`,
      [tenant, title],
    );
    const chunk = await pool.query(
      `INSERT INTO knowledge_chunks (tenant_id, document_id, ord, title, content) VALUES ($1, $2, 0, $3, $4) RETURNING id`,
      [tenant, doc.rows[0].id, title, content],
    );
    await storeEmbeddings(db, tenant, 'm', [{ id: chunk.rows[0].id, documentId: doc.rows[0].id, vector: normalize(vector) }]);
    ids[key] = chunk.rows[0].id;
  }

  before(async () => {
    database = await createTestDatabase();
    pool = createPool(database.url);
    await migrate(pool);
    db = createDb(pool);
    await pool.query(`INSERT INTO tenants (id, name, fallback_message) VALUES ('a', 'A', 'x'), ('b', 'B', 'x')`);
    await addChunk('a', 'refund', 'Refunds', 'Refunds are paid back to the original card within 5 days.', [1, 0, 0]);
    await addChunk('a', 'returns', 'Returns', 'Items can be brought back to a store within 30 days.', [0.8, 0.6, 0]);
    await addChunk('a', 'hours', 'Opening hours', 'Open Monday to Saturday, 9am to 6pm; refunds desk closes at 5pm.', [0, 0, 1]);
    await addChunk('b', 'other', 'Refunds', 'Tenant B refunds in cash only.', [1, 0, 0]);
  });
  after(async () => {
    await pool.end();
    await database.drop();
  });

  it('uses pgvector only where the extension exists, else exact cosine over real[] arrays', async () => {
    const available = await pool.query(`SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`);
    assert.equal(await embeddingColumnIsVector(db), available.rows[0].n > 0);
    const progress = await pool.query(`SELECT status, chunks_embedded FROM knowledge_documents WHERE tenant_id = 'a'`);
    assert.ok(progress.rows.every((r) => r.status === 'ready' && r.chunks_embedded === 1));
  });

  it('ranks by exact cosine similarity in vector mode, within the tenant only', async () => {
    const hits = await retrieve(db, {
      tenantId: 'a',
      question: 'irrelevant words',
      mode: 'vector',
      query: { model: 'm', vector: normalize([1, 0.1, 0]) },
    });
    assert.deepEqual(
      hits.map((h) => h.chunkId),
      [ids.refund, ids.returns, ids.hours],
    );
    const expected = normalize([1, 0.1, 0]);
    assert.ok(Math.abs(hits[0].vectorScore! - expected[0]) < 1e-5, `cosine ${hits[0].vectorScore}`);
    assert.ok(Math.abs(hits[1].vectorScore! - (0.8 * expected[0] + 0.6 * expected[1])) < 1e-5);
    assert.ok(!hits.some((h) => h.chunkId === ids.other));
    const otherModel = await retrieve(db, { tenantId: 'a', question: 'x', mode: 'vector', query: { model: 'another', vector: [1, 0, 0] } });
    assert.equal(otherModel.length, 0, 'vectors of another model are never compared');
  });

  it('fuses full-text and vector rankings by reciprocal rank', async () => {
    const question = 'card refunds';
    const query = { model: 'm', vector: normalize([0.7, 0.7, 0]) };
    const fts = await retrieve(db, { tenantId: 'a', question, mode: 'fts', query });
    const vec = await retrieve(db, { tenantId: 'a', question, mode: 'vector', query });
    const hybrid = await retrieve(db, { tenantId: 'a', question, mode: 'hybrid', query });
    assert.ok(!fts.some((h) => h.chunkId === ids.returns), 'no word of the question in the returns chunk');
    const rrf = new Map<string, number>();
    for (const list of [fts, vec]) list.forEach((h, rank) => rrf.set(h.chunkId, (rrf.get(h.chunkId) ?? 0) + 1 / (60 + rank + 1)));
    const expected = [...rrf.entries()].sort((x, y) => y[1] - x[1]).map(([id]) => id);
    assert.deepEqual(
      hybrid.map((h) => h.chunkId),
      expected,
    );
    assert.equal(hybrid[0].chunkId, ids.refund, 'first in both lists');
    assert.ok(
      hybrid.some((h) => h.chunkId === ids.returns),
      'found by meaning alone',
    );
    assert.ok(hybrid.every((h) => h.chunkId !== ids.other));
  });

  it('full-text search survives any question: 500 long messages folded into one, quotes and backslashes', async () => {
    const words = Array.from({ length: 700 }, (_, i) => `word${i}`).join(' ');
    const burst = Array.from({ length: 500 }, (_, i) => `refunds ${i} ${words}`.slice(0, 4000)).join('\n');
    const hits = await retrieve(db, { tenantId: 'a', question: burst, mode: 'fts' });
    assert.equal(hits[0]?.chunkId, ids.refund, 'the leading term still finds its chunk');
    const odd = await retrieve(db, { tenantId: 'a', question: "refunds' \\ it's O'Brien\\'s | & ! <-> :* (", mode: 'fts' });
    assert.equal(odd[0]?.chunkId, ids.refund);
  });

  it('chunks with overlap and covers the whole text', () => {
    const text = Array.from({ length: 60 }, (_, i) => `Sentence number ${i} about the shop.`).join(' ');
    const chunks = chunkText(text, 300, 60);
    assert.ok(chunks.length > 5 && chunks.every((c) => c.length <= 300));
    for (let i = 1; i < chunks.length; i++) {
      const tail = chunks[i - 1].slice(-30);
      assert.ok(chunks[i].includes(tail.slice(tail.indexOf(' ') + 1)), `chunk ${i} repeats the end of chunk ${i - 1}`);
    }
    for (let i = 0; i < 60; i++)
      assert.ok(
        chunks.some((c) => c.includes(`Sentence number ${i} `)),
        `sentence ${i} kept`,
      );
    assert.deepEqual(chunkText('short'), ['short']);
    assert.deepEqual(chunkText('  \n '), []);
  });

  it('masks phone numbers and emails but keeps dates and order numbers', () => {
    assert.equal(
      maskPii('Call +1 (555) 123-4567 or 0044 20 7946 0958, mail a.b@example.org; order 12345 on 2025-09-10'),
      'Call [phone] or [phone], mail [email]; order 12345 on 2025-09-10',
    );
  });

  it('reads the model answer and catches repeated instructions', () => {
    assert.deepEqual(parseAnswer('{"answer":"Hi","confidence":0.7,"sources":["S1"]}'), { answer: 'Hi', confidence: 0.7, sources: ['S1'] });
    assert.deepEqual(parseAnswer('Sure! {"answer":"Hi","confidence":2}'), { answer: 'Hi', confidence: 1, sources: [] });
    assert.deepEqual(parseAnswer('plain text'), { answer: 'plain text', confidence: 0, sources: [] });
    const prompt = {
      system: 'You are the assistant.\n- Answer only from the knowledge excerpts and tool results you are given.',
      canary: 'ref-abc123',
    };
    assert.equal(leaksInstructions('My rules: answer only from the knowledge excerpts and tool results you are given.', prompt), true);
    assert.equal(leaksInstructions('the reference is REF-ABC123', prompt), true);
    assert.equal(leaksInstructions('We are open until 6pm.', prompt), false);
  });
});
