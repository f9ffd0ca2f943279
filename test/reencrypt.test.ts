import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { contacts, messages, sandboxMessages } from '../core/db/schema.js';
import { Keyring, type EncColumn } from '../core/platform/crypto.js';
import { countStale, reencryptAll } from '../core/privacy/reencrypt.js';
import { EncryptionCodec } from '../core/temporal/codec.js';
import { createHarness, TEST_ENCRYPTION_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const NEW_KEY = `t2:${Buffer.alloc(32, 9).toString('base64')}`;

describe('re-encryption after a key rotation', () => {
  let h: Harness;
  const oldOnly = new Keyring(TEST_ENCRYPTION_KEY);
  let rotated: Keyring;

  before(async () => {
    // The deployment already runs with the new key first and the old one still listed.
    h = await createHarness({ env: { PARLEY_ENCRYPTION_KEY: `${NEW_KEY},${TEST_ENCRYPTION_KEY}` } });
    rotated = h.runtime.keyring;
  });
  after(() => h.close());

  it('Temporal payloads: the new key encrypts, the old key still decrypts history written before', async () => {
    const payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"+15550001 said hi"') };
    const [old] = await new EncryptionCodec(oldOnly).encode([payload]);
    const [fresh] = await new EncryptionCodec(rotated).encode([payload]);
    assert.equal(Buffer.from(old.metadata!['encryption-key-id']!).toString(), 't1');
    assert.equal(Buffer.from(fresh.metadata!['encryption-key-id']!).toString(), 't2');
    const [decoded] = await new EncryptionCodec(rotated).decode([old]);
    assert.equal(Buffer.from(decoded.data!).toString(), '"+15550001 said hi"');
    await assert.rejects(new EncryptionCodec(oldOnly).decode([fresh]));
  });

  it('rewrites every *_enc value under the primary key while traffic continues', async () => {
    const t = await h.createTenant();
    const phones = Array.from({ length: 6 }, () => uniquePhone());
    for (const from of phones) {
      await h.inbound(t.key, { from, message: `before rotation ${from}`, tenant_id: t.id, timestamp: new Date().toISOString() });
    }
    for (const p of phones)
      await waitFor(async () => (await h.sandbox(t.id, t.key, p)).length > 0, { timeoutMs: 30_000, what: 'every reply' });
    // Make the existing data look written before the rotation: under the old key.
    const pool = h.runtime.pool;
    const columns: [string, EncColumn][] = [
      ['contacts', contacts.phoneEnc],
      ['messages', messages.bodyEnc],
      ['sandbox_messages', sandboxMessages.toEnc],
      ['sandbox_messages', sandboxMessages.textEnc],
    ];
    for (const [table, column] of columns) {
      const { rows } = await pool.query(`SELECT ctid::text AS c, tenant_id, ${column.name} AS v FROM ${table}`);
      for (const r of rows) {
        const at = { tenantId: r.tenant_id, column };
        await pool.query(`UPDATE ${table} SET ${column.name} = $1 WHERE ctid = $2::tid`, [
          oldOnly.encrypt(rotated.decrypt(r.v, at), at),
          r.c,
        ]);
      }
    }
    const before = await countStale(pool, rotated);
    // 6 contacts, 12 messages, 6 sandbox sends with two columns each.
    assert.equal(before, 30);

    // Online: messages keep arriving during the run.
    const during = (async () => {
      for (let i = 0; i < 5; i++) {
        await h.inbound(t.key, { from: phones[i], message: `during rotation ${i}`, tenant_id: t.id, timestamp: new Date().toISOString() });
      }
    })();
    const result = await reencryptAll(pool, rotated, { batchSize: 7 });
    await during;
    assert.equal(result.failed, 0);
    assert.deepEqual(result.unknown, []);
    assert.ok(Object.values(result.columns).reduce((a, b) => a + b, 0) >= before - 5);
    assert.equal(await countStale(pool, rotated), 0);

    // New-key data reads back through the API; the old key alone no longer opens it.
    const conv = await h.request('GET', `/routes/tenants/${t.id}/conversations`, { key: t.key });
    assert.equal(conv.status, 200);
    assert.deepEqual(conv.body.conversations.map((c: any) => c.contact_phone).sort(), [...phones].sort());
    const { rows } = await pool.query<{ v: string; tenant_id: string }>(`SELECT body_enc AS v, tenant_id FROM messages LIMIT 1`);
    assert.match(rows[0].v, /^v2\.t2\./);
    assert.throws(() => oldOnly.decrypt(rows[0].v, { tenantId: rows[0].tenant_id, column: messages.bodyEnc }), {
      code: 'CIPHERTEXT_KEY_UNKNOWN',
    });
    // Look-ups by phone still work: the blind index does not change with a rotation.
    assert.equal((await h.sandbox(t.id, t.key, phones[0])).length >= 1, true);
  });
});
