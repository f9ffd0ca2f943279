import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { contacts, messageMedia, messages, sandboxMessages } from '../core/db/schema.js';
import { sealBytes, type EncColumn, type Keyring } from '../core/platform/crypto.js';
import { countStale } from '../core/privacy/reencrypt.js';
import { createHarness, TEST_ENCRYPTION_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The encrypted columns the conversation path fills, by table. */
const COLUMNS: [string, EncColumn][] = [
  ['contacts', contacts.phoneEnc],
  ['messages', messages.bodyEnc],
  ['sandbox_messages', sandboxMessages.toEnc],
  ['sandbox_messages', sandboxMessages.textEnc],
];

const [TEST_KID, TEST_KEY] = TEST_ENCRYPTION_KEY.split(':');

/** What Parley wrote before the binding: `v1.<kid>.<data>`, AES-GCM without additional data. */
function sealV1(plain: string): string {
  return `v1.${TEST_KID}.${sealBytes(Buffer.from(TEST_KEY, 'base64'), Buffer.from(plain, 'utf8')).toString('base64url')}`;
}

/**
 * A downloaded media item as the download leaves it (content and its key label), on the tenant's
 * first message. `legacy`: as Parley wrote it before the binding (a bare key id, no additional data).
 */
async function insertMedia(h: Harness, tenantId: string, bytes: string, legacy = false): Promise<string> {
  const content = legacy
    ? { label: TEST_KID, data: sealBytes(Buffer.from(TEST_KEY, 'base64'), Buffer.from(bytes)) }
    : h.runtime.keyring.encryptColumnBytes(Buffer.from(bytes), { tenantId, column: messageMedia.contentEnc });
  const { rows } = await h.runtime.pool.query<{ id: string }>(
    `INSERT INTO message_media (tenant_id, message_id, channel_id, kind, ref_enc, mime_type, status, size_bytes, content_enc, content_key, downloaded_at)
     SELECT m.tenant_id, m.id, c.channel_id, 'image', $2, 'image/png', 'downloaded', $3, $4, $5, now()
       FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.tenant_id = $1 ORDER BY m.seq LIMIT 1
     RETURNING id`,
    [tenantId, sealV1('media-ref'), bytes.length, content.data, content.label],
  );
  return rows[0].id;
}

/** `npm run reencrypt` as an operator runs it, against the harness's database. */
function runReencrypt(h: Harness): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'reencrypt'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        DATABASE_URL: h.databaseUrl,
        PARLEY_ENCRYPTION_KEY: h.config.PARLEY_ENCRYPTION_KEY!,
        ADMIN_API_KEY: h.config.ADMIN_API_KEY!,
        DATA_DIR: h.config.DATA_DIR,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 || stdout.includes('done:') ? resolve({ code, stdout }) : reject(new Error(`reencrypt: ${code} ${stderr}`)),
    );
  });
}

/** Every encrypted value of the conversation path, in a stable order. */
async function snapshot(h: Harness): Promise<string[]> {
  const out: string[] = [];
  for (const [table, column] of COLUMNS) {
    const { rows } = await h.runtime.pool.query<{ v: string }>(`SELECT ${column.name} AS v FROM ${table} ORDER BY ${column.name}`);
    out.push(...rows.map((r) => `${table}.${column.name}=${r.v}`));
  }
  const { rows } = await h.runtime.pool.query<{ v: string }>(
    `SELECT ref_enc || ' ' || content_key || ' ' || encode(content_enc, 'hex') AS v FROM message_media ORDER BY 1`,
  );
  return [...out, ...rows.map((r) => `message_media=${r.v}`)];
}

function assertRejected(res: { status: number; body: any }, column: string, secrets: string[]) {
  assert.equal(res.status, 500, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'CIPHERTEXT_REJECTED');
  assert.match(res.body.error.message, new RegExp(`^${column.replace('.', '\\.')}: `));
  const text = JSON.stringify(res.body);
  for (const s of secrets) assert.ok(!text.includes(s), 'the response must not carry the plaintext');
}

describe('ciphertexts bound to their row (tenant, table, column)', () => {
  let h: Harness;
  let keyring: Keyring;

  before(async () => {
    h = await createHarness();
    keyring = h.runtime.keyring;
  });
  after(() => h.close());

  it('opens only with the tenant, table and column it was written for', () => {
    const at = { tenantId: 'tenant-a', column: contacts.phoneEnc };
    const sealed = keyring.encrypt('+15550000001', at);
    assert.match(sealed, /^v2\.t1\./);
    assert.equal(keyring.decrypt(sealed, at), '+15550000001');
    for (const wrong of [
      { tenantId: 'tenant-b', column: contacts.phoneEnc },
      { tenantId: null, column: contacts.phoneEnc },
      { tenantId: 'tenant-a', column: contacts.nameEnc },
      { tenantId: 'tenant-a', column: sandboxMessages.toEnc },
    ]) {
      assert.throws(() => keyring.decrypt(sealed, wrong), { name: 'KeyringError', code: 'CIPHERTEXT_REJECTED' });
    }
    assert.throws(() => keyring.decrypt(`v3${sealed.slice(2)}`, at), { code: 'CIPHERTEXT_MALFORMED' });
    // A v1 value (written before the binding) still opens, wherever it is, until it is re-encrypted.
    assert.equal(keyring.decrypt(sealV1('legacy'), { tenantId: 'anyone', column: messages.bodyEnc }), 'legacy');
  });

  it('a value copied into another row does not open there: a 500 naming the column, never the plaintext', async () => {
    const a = await h.createTenant();
    const b = await h.createTenant();
    const askA = await h.ask(a, 'my order number is 4711');
    const askB = await h.ask(b, 'hello from B');
    const pool = h.runtime.pool;
    const one = async (q: string, params: unknown[]) => (await pool.query<{ id: string; v: string }>(q, params)).rows[0];
    const contactA = await one('SELECT id, phone_enc AS v FROM contacts WHERE tenant_id = $1', [a.id]);
    const contactB = await one('SELECT id, phone_enc AS v FROM contacts WHERE tenant_id = $1', [b.id]);
    const sandboxA = await one('SELECT id, text_enc AS v FROM sandbox_messages WHERE tenant_id = $1', [a.id]);
    const inboundA = await one(`SELECT id, conversation_id AS v FROM messages WHERE tenant_id = $1 AND direction = 'inbound'`, [a.id]);

    // Other tenant, same table and column: A's phone number in B's contact.
    await pool.query('UPDATE contacts SET phone_enc = $1 WHERE id = $2', [contactA.v, contactB.id]);
    assertRejected(await h.request('GET', `/routes/tenants/${b.id}/conversations`, { key: b.key }), 'contacts.phone_enc', [askA.from]);
    await pool.query('UPDATE contacts SET phone_enc = $1 WHERE id = $2', [contactB.v, contactB.id]);
    const listB = await h.request('GET', `/routes/tenants/${b.id}/conversations`, { key: b.key });
    assert.equal(listB.status, 200);
    assert.deepEqual(
      listB.body.conversations.map((c: any) => c.contact_phone),
      [askB.from],
    );

    // Same tenant, same table, other column: the reply's text as its recipient.
    const { rows: toA } = await pool.query<{ v: string }>('SELECT to_enc AS v FROM sandbox_messages WHERE id = $1', [sandboxA.id]);
    await pool.query('UPDATE sandbox_messages SET to_enc = text_enc WHERE id = $1', [sandboxA.id]);
    const sandboxUrl = `/routes/tenants/${a.id}/sandbox/messages?to=${encodeURIComponent(askA.from)}`;
    assertRejected(await h.request('GET', sandboxUrl, { key: a.key }), 'sandbox_messages.to_enc', [askA.text]);
    await pool.query('UPDATE sandbox_messages SET to_enc = $1 WHERE id = $2', [toA[0].v, sandboxA.id]);
    assert.equal((await h.sandbox(a.id, a.key, askA.from))[0].to, askA.from);

    // Same tenant, other table: the contact's phone number as a message's text.
    const { rows: bodyA } = await pool.query<{ v: string }>('SELECT body_enc AS v FROM messages WHERE id = $1', [inboundA.id]);
    await pool.query('UPDATE messages SET body_enc = $1 WHERE id = $2', [contactA.v, inboundA.id]);
    const detailUrl = `/routes/tenants/${a.id}/conversations/${inboundA.v}`;
    assertRejected(await h.request('GET', detailUrl, { key: a.key }), 'messages.body_enc', [askA.from]);
    await pool.query('UPDATE messages SET body_enc = $1 WHERE id = $2', [bodyA[0].v, inboundA.id]);
    const detail = await h.request('GET', detailUrl, { key: a.key });
    assert.equal(detail.status, 200);
    assert.equal(detail.body.messages[0].text, 'my order number is 4711');

    // Media content (bytea, its key label beside it): B's image with its label in A's media row.
    const mediaA = await insertMedia(h, a.id, 'the image A sent');
    const mediaB = await insertMedia(h, b.id, 'the image B sent');
    await pool.query(
      `UPDATE message_media x SET content_enc = y.content_enc, content_key = y.content_key FROM message_media y WHERE x.id = $1 AND y.id = $2`,
      [mediaA, mediaB],
    );
    const contentUrl = `/routes/tenants/${a.id}/media/${mediaA}/content`;
    assertRejected(await h.request('GET', contentUrl, { key: a.key }), 'message_media.content_enc', ['the image B sent']);
    const ownB = await h.request('GET', `/routes/tenants/${b.id}/media/${mediaB}/content`, { key: b.key });
    assert.equal(ownB.status, 200);
    assert.equal(ownB.body, 'the image B sent');

    // Operators see each refusal in the log, by code and column; the log holds none of the values.
    const logged = h.logs.lines.filter((l) => l.includes('CIPHERTEXT_REJECTED'));
    for (const column of ['contacts.phone_enc', 'sandbox_messages.to_enc', 'messages.body_enc', 'message_media.content_enc']) {
      assert.ok(
        logged.some((l) => l.includes(`${column}: `)),
        `a log line for ${column}`,
      );
    }
    for (const secret of [askA.from, askA.text, 'the image B sent']) assert.ok(!h.logs.text().includes(secret));
  });

  it('v1 rows keep working; `npm run reencrypt` binds them while the API serves traffic; a second run changes nothing', async () => {
    const t = await h.createTenant();
    const phones = Array.from({ length: 4 }, () => uniquePhone());
    for (const from of phones) {
      assert.equal(
        (await h.inbound(t.key, { from, message: `before upgrade ${from}`, tenant_id: t.id, timestamp: new Date().toISOString() })).status,
        202,
      );
    }
    for (const p of phones)
      await waitFor(async () => (await h.sandbox(t.id, t.key, p)).length > 0, { timeoutMs: 30_000, what: 'every reply' });

    // The database as an older Parley left it: every value v1, bound to nothing.
    const pool = h.runtime.pool;
    for (const [table, column] of COLUMNS) {
      const { rows } = await pool.query(`SELECT ctid::text AS c, tenant_id, ${column.name} AS v FROM ${table}`);
      for (const r of rows) {
        const plain = keyring.decrypt(r.v, { tenantId: r.tenant_id, column });
        await pool.query(`UPDATE ${table} SET ${column.name} = $1 WHERE ctid = $2::tid`, [sealV1(plain), r.c]);
      }
    }
    const legacyMedia = await insertMedia(h, t.id, 'an image from before', true);
    const mediaUrl = `/routes/tenants/${t.id}/media/${legacyMedia}/content`;
    assert.equal((await h.request('GET', mediaUrl, { key: t.key })).body, 'an image from before');
    const stale = await countStale(pool, keyring);
    assert.ok(stale >= phones.length * 5, `stale: ${stale}`);

    // v1 values read as before.
    const list = await h.request('GET', `/routes/tenants/${t.id}/conversations`, { key: t.key });
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.conversations.map((c: any) => c.contact_phone).sort(), [...phones].sort());

    // The operator runs the script while customers keep writing (the same contacts: their rows move).
    const during = (async () => {
      for (let i = 0; i < 6; i++) {
        const res = await h.inbound(t.key, {
          from: phones[i % phones.length],
          message: `during ${i}`,
          tenant_id: t.id,
          timestamp: new Date().toISOString(),
        });
        assert.equal(res.status, 202);
      }
    })();
    const first = await runReencrypt(h);
    await during;
    assert.equal(first.code, 0, first.stdout);
    const done = /done: (\d+) values re-encrypted, 0 did not open, 0 columns outside the schema, 0 not yet current/.exec(first.stdout);
    assert.ok(done, first.stdout);
    assert.equal(Number(done[1]), stale);
    assert.match(first.stdout, /contacts\.phone_enc: \d+ re-encrypted \(bound to each row's tenant_id\)/);

    // Every reply to the traffic during the run arrives, and everything reads back through the API.
    await waitFor(
      async () => {
        const sent = await Promise.all(phones.map((p) => h.sandbox(t.id, t.key, p)));
        return sent.reduce((n, m) => n + m.length, 0) >= phones.length + 6;
      },
      { timeoutMs: 30_000, what: 'the replies to the traffic during the run' },
    );
    assert.equal(await countStale(pool, keyring), 0);
    const { rows: contactRows } = await pool.query<{ v: string }>('SELECT phone_enc AS v FROM contacts WHERE tenant_id = $1', [t.id]);
    for (const r of contactRows) {
      assert.match(r.v, /^v2\.t1\./);
      // Bound to this row's tenant: another tenant's row would not open it.
      assert.throws(() => keyring.decrypt(r.v, { tenantId: 'someone-else', column: contacts.phoneEnc }), { code: 'CIPHERTEXT_REJECTED' });
    }
    const after = await h.request('GET', `/routes/tenants/${t.id}/conversations`, { key: t.key });
    assert.deepEqual(after.body.conversations.map((c: any) => c.contact_phone).sort(), [...phones].sort());
    const { rows: mediaRows } = await pool.query('SELECT content_key, ref_enc FROM message_media WHERE id = $1', [legacyMedia]);
    assert.equal(mediaRows[0].content_key, 'v2.t1');
    assert.match(mediaRows[0].ref_enc, /^v2\.t1\./);
    assert.equal((await h.request('GET', mediaUrl, { key: t.key })).body, 'an image from before');
    const detail = await h.request('GET', `/routes/tenants/${t.id}/conversations/${after.body.conversations[0].id}`, { key: t.key });
    assert.equal(detail.status, 200);
    assert.ok(detail.body.messages.some((m: any) => m.text.startsWith('before upgrade')));

    // Idempotent: a second run rewrites nothing.
    const before = await snapshot(h);
    const second = await runReencrypt(h);
    assert.equal(second.code, 0, second.stdout);
    assert.match(second.stdout, /done: 0 values re-encrypted, 0 did not open, 0 columns outside the schema, 0 not yet current/);
    assert.deepEqual(await snapshot(h), before);
  });
});
