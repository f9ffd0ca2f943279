import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createHarness, TEST_ADMIN_KEY, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

/** A small seeded PRNG (mulberry32), so a failing case can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NON_STRINGS: unknown[] = [null, 0, -1, 1.5, 2 ** 53 + 1, true, false, [], {}, ['a'], { a: 1 }, [[[]]]];
/** Strings that no id, phone, date or slug field accepts. */
const BAD_STRINGS = [
  "' OR 1=1 --",
  "'; DROP TABLE messages; --",
  '1; SELECT pg_sleep(5)',
  '\u0000',
  'a\u0000b',
  '\uD800',
  '<script>alert(1)</script>',
  '../../etc/passwd',
  '%00',
  '${7*7}',
  '{{constructor.constructor("return process")()}}',
  '',
  '   ',
  'NULL',
  '\u202E\u0041',
];
/** Anything at all, for fields beside the one that is broken. */
const HOSTILE: unknown[] = [...NON_STRINGS, ...BAD_STRINGS, 'x'.repeat(100_000), '𝕏'.repeat(3000), 'é'.normalize('NFD').repeat(500)];

interface Target {
  name: string;
  method: string;
  path: () => string;
  key: () => string;
  base: () => Record<string, unknown>;
  required: string[];
  invalid: Record<string, unknown[]>;
}

describe('fuzz: hostile bodies get a 4xx and change nothing', () => {
  let h: Harness;
  let t: { id: string; key: string };
  let other: { id: string; key: string };
  let contactId: string;

  before(async () => {
    // Its webhook cases fail authentication hundreds of times from one address: throttling is edges.test.ts's subject.
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '0', AUTH_FAILURES_PER_MINUTE: '0' } });
    t = await h.createTenant();
    other = await h.createTenant();
    const phone = uniquePhone();
    await h.inbound(t.key, { from: phone, message: 'seed message', tenant_id: t.id, timestamp: new Date().toISOString() });
    await waitFor(async () => (await h.sandbox(t.id, t.key, phone)).length > 0, { timeoutMs: 30_000 });
    contactId = (await h.runtime.pool.query<{ id: string }>(`SELECT id FROM contacts LIMIT 1`)).rows[0].id;
    // Nothing may keep writing while the fuzzer compares snapshots.
    await h.stopWorker();
  });
  after(() => h.close());

  /** Row counts and a checksum of every table (api_keys.last_used_at is bookkeeping, left out). */
  async function snapshot(): Promise<Record<string, string>> {
    const { rows: tables } = await h.runtime.pool.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`,
    );
    const out: Record<string, string> = {};
    for (const { tablename } of tables) {
      const { rows } = await h.runtime.pool.query<{ n: number; sum: string }>(
        `SELECT count(*)::int AS n, md5(coalesce(string_agg((to_jsonb(x) - 'last_used_at')::text, '|' ORDER BY (to_jsonb(x) - 'last_used_at')::text), '')) AS sum FROM "${tablename}" x`,
      );
      out[tablename] = `${rows[0].n}:${rows[0].sum}`;
    }
    return out;
  }

  it('1,400 generated bodies across the body-taking routes', async () => {
    const key = () => t.key;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const targets: Target[] = [
      {
        name: 'inbound',
        method: 'POST',
        path: () => '/webhook/inbound',
        key,
        base: () => ({ from: uniquePhone(), message: 'hello', tenant_id: t.id, timestamp: new Date().toISOString() }),
        required: ['from', 'message', 'tenant_id', 'timestamp'],
        invalid: {
          from: [...NON_STRINGS, ...BAD_STRINGS, '+1234', '15551234567', '+0123456789'],
          message: [...NON_STRINGS, '', 'x'.repeat(4097)],
          tenant_id: [...NON_STRINGS, ...BAD_STRINGS, 'A', 'Upper-Case', '-x', other.id, 'no-such-tenant'],
          timestamp: [...NON_STRINGS, ...BAD_STRINGS, '2025-13-45T99:00:00Z', '1699999999', 'yesterday'],
          message_id: [...NON_STRINGS, '', 'x'.repeat(257)],
        },
      },
      {
        name: 'messages/send',
        method: 'POST',
        path: () => '/messages/send',
        key,
        base: () => ({ to: uniquePhone(), message: 'hello', tenant_id: t.id }),
        required: ['to', 'message', 'tenant_id'],
        invalid: {
          to: [...NON_STRINGS, ...BAD_STRINGS, '+1234', '15551234567'],
          message: [...NON_STRINGS, '', 'x'.repeat(4097)],
          tenant_id: [...NON_STRINGS, ...BAD_STRINGS, 'Upper-Case', other.id, 'no-such-tenant'],
          job_id: [...NON_STRINGS, ...BAD_STRINGS, 'not-a-uuid'],
        },
      },
      {
        name: 'contacts',
        method: 'PUT',
        path: () => `/routes/tenants/${t.id}/contacts`,
        key,
        base: () => ({ contacts: [{ phone: uniquePhone(), opted_in: true }] }),
        required: ['contacts'],
        invalid: {
          contacts: [
            ...NON_STRINGS,
            [{ phone: "'; DROP TABLE contacts; --", opted_in: true }],
            [{ phone: '+15551234567' }],
            [{ phone: '+15551234567', opted_in: 'yes' }],
            [{ phone: '+15551234567', opted_in: true, tags: ['bad tag!'] }],
            [{ phone: '+15551234567', opted_in: true, consent_at: 'yesterday' }],
            [{ phone: '+15551234567', opted_in: true, name: '' }],
            Array.from({ length: 1001 }, () => ({ phone: '+15551234567', opted_in: true })),
          ],
        },
      },
      {
        name: 'create tenant',
        method: 'POST',
        path: () => '/routes/tenants',
        key: () => TEST_ADMIN_KEY,
        base: () => ({ id: `fz-${randomUUID().slice(0, 8)}`, name: 'Fuzz' }),
        required: ['id', 'name'],
        invalid: {
          id: [...NON_STRINGS, ...BAD_STRINGS, 'A', 'x', t.id],
          name: [...NON_STRINGS, '', '     ', 'x'.repeat(201)],
          fallback_message: [...NON_STRINGS, '', 'x'.repeat(4097)],
        },
      },
      {
        name: 'settings',
        method: 'PATCH',
        path: () => `/routes/tenants/${t.id}/settings`,
        key,
        base: () => ({ fallback_message: 'hi', debounce_ms: 100 }),
        required: [],
        invalid: {
          fallback_message: [...NON_STRINGS, '', 'x'.repeat(4097)],
          debounce_ms: [null, -1, 60_001, 1.5, '100', true, [], {}],
          unknown_setting: [1, 'x', null],
        },
      },
      {
        name: 'knowledge',
        method: 'PUT',
        path: () => `/routes/tenants/${t.id}/knowledge`,
        key,
        base: () => ({ entries: [{ title: 'T', content: 'C' }] }),
        required: ['entries'],
        invalid: {
          entries: [
            ...NON_STRINGS.filter((v) => !Array.isArray(v) || (v as unknown[]).length > 0),
            [{ title: '', content: 'c' }],
            [{ title: 'a' }],
            [{ title: 1, content: 'x' }],
            [{ title: 'a', content: 'x'.repeat(4097) }],
            [null],
            ['x'],
          ],
        },
      },
      {
        name: 'keys',
        method: 'POST',
        path: () => `/routes/tenants/${t.id}/keys`,
        key,
        base: () => ({ name: 'k', scopes: ['read'] }),
        required: ['name', 'scopes'],
        invalid: {
          name: [...NON_STRINGS, '', 'x'.repeat(101)],
          scopes: [[], ['root'], 'admin', [1], ['read', 'read'], null, [null], {}, ["admin' OR '1'='1"]],
        },
      },
      {
        name: 'retention',
        method: 'PUT',
        path: () => `/routes/tenants/${t.id}/retention`,
        key,
        base: () => ({ days: 30 }),
        required: ['days'],
        invalid: { days: [0, -1, 1.5, '30', 36_501, true, [], {}, 'NaN', 1e300] },
      },
      {
        name: 'consent',
        method: 'PUT',
        path: () => `/routes/tenants/${t.id}/contacts/${contactId}/consent`,
        key,
        base: () => ({ opted_in: true, source: 'fuzz' }),
        required: ['opted_in', 'source'],
        invalid: { opted_in: ['yes', 1, 0, null, 'true', [], {}], source: [...NON_STRINGS, '', 'x'.repeat(101)] },
      },
      {
        name: 'codec decode',
        method: 'POST',
        path: () => '/codec/decode',
        key: () => TEST_ADMIN_KEY,
        base: () => ({ payloads: [] }),
        required: ['payloads'],
        invalid: {
          payloads: [
            'x',
            null,
            {},
            [1],
            [{ data: 'not base64!!' }],
            [{ metadata: { encoding: '%%%' } }],
            [
              {
                metadata: { encoding: b64('binary/encrypted'), 'encryption-key-id': b64('t1') },
                data: b64('garbage that is no ciphertext'),
              },
            ],
            [{ metadata: { encoding: b64('binary/encrypted'), 'encryption-key-id': b64('nokey') }, data: b64('x') }],
          ],
        },
      },
      {
        name: 'codec encode',
        method: 'POST',
        path: () => '/codec/encode',
        key: () => TEST_ADMIN_KEY,
        base: () => ({ payloads: [] }),
        required: ['payloads'],
        invalid: { payloads: ['x', null, {}, [1], [{ data: 'not base64!!' }], [{ metadata: 'x' }]] },
      },
    ];

    const rand = prng(20261123);
    const pick = <T>(arr: T[]): T => arr[Math.floor(rand() * arr.length)];
    interface Case {
      label: string;
      method: string;
      path: string;
      key?: string;
      body: string | Buffer;
      contentType: string;
    }
    const cases: Case[] = [];
    for (let i = 0; i < 1400; i++) {
      const target = targets[i % targets.length];
      const body = target.base();
      // At least one field broken for certain; the rest hostile or left alone.
      const breakable = Object.keys(target.invalid);
      const broken = new Set([pick(breakable), ...(rand() < 0.4 ? [pick(breakable)] : [])]);
      for (const field of broken) {
        if (target.required.includes(field) && rand() < 0.2) delete body[field];
        else body[field] = pick(target.invalid[field]);
      }
      for (const field of Object.keys(body)) if (!broken.has(field) && rand() < 0.4) body[field] = pick(HOSTILE);
      let text = JSON.stringify(body);
      let raw: string | Buffer = text;
      let contentType = 'application/json';
      let variant = 'json';
      const roll = rand();
      if (roll < 0.12) {
        variant = 'proto-pollution';
        const key = pick(['"__proto__":{"polluted":true}', '"constructor":{"prototype":{"polluted":true}}', '"__proto__":null']);
        raw = text === '{}' ? `{${key}}` : `{${key},${text.slice(1)}`;
      } else if (roll < 0.22) {
        variant = 'invalid-utf8';
        const at = Math.max(1, text.indexOf('"', 2));
        raw = Buffer.concat([
          Buffer.from(text.slice(0, at)),
          Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1]),
          Buffer.from(text.slice(at)),
        ]);
      } else if (roll < 0.28) {
        variant = 'deep-nesting';
        const depth = pick([1000, 10_000, 100_000]);
        raw = `{"${pick(breakable)}":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      } else if (roll < 0.33) {
        variant = 'not-json';
        raw = pick(['{', '{"a":', "{'single':'quotes'}", 'null', '[]', '"string"', '123', 'true', '\u0000', '<xml/>', 'a=1&b=2', '']);
      } else if (roll < 0.37) {
        variant = 'wrong-content-type';
        contentType = pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']);
      } else if (roll < 0.39) {
        variant = 'too-large';
        raw = JSON.stringify({ ...body, padding: 'x'.repeat(1_100_000) });
      } else if (roll < 0.42) {
        variant = 'no-key';
      }
      cases.push({
        label: `#${i} ${target.name} ${variant}`,
        method: target.method,
        path: target.path(),
        key: variant === 'no-key' ? undefined : target.key(),
        body: raw,
        contentType,
      });
    }
    // Valid in every way but a NUL character in free text, which PostgreSQL cannot store.
    const nul = 'before\u0000after';
    const valid: [string, string, string, unknown][] = [
      ['PUT', `/routes/tenants/${t.id}/knowledge`, t.key, { entries: [{ title: nul, content: 'c' }] }],
      ['PUT', `/routes/tenants/${t.id}/knowledge`, t.key, { entries: [{ title: 't', content: nul }] }],
      ['POST', '/routes/tenants', TEST_ADMIN_KEY, { id: 'fz-nul', name: nul }],
      ['POST', '/routes/tenants', TEST_ADMIN_KEY, { id: 'fz-nul', name: 'n', fallback_message: nul }],
      ['PATCH', `/routes/tenants/${t.id}/settings`, t.key, { fallback_message: nul }],
      ['POST', `/routes/tenants/${t.id}/keys`, t.key, { name: nul, scopes: ['read'] }],
      ['PUT', `/routes/tenants/${t.id}/contacts/${contactId}/consent`, t.key, { opted_in: true, source: nul }],
    ];
    for (const [method, path, k, b] of valid) {
      cases.push({ label: `nul ${method} ${path}`, method, path, key: k, body: JSON.stringify(b), contentType: 'application/json' });
    }
    // Query strings of the routes that take one.
    for (let i = 0; i < 100; i++) {
      const raw = String(pick([...BAD_STRINGS, 'x'.repeat(5000), '+1', '-1', '1e9', '[object Object]']));
      // A lone surrogate cannot be percent-encoded: send invalid UTF-8 escapes instead.
      const v = raw === '\uD800' ? '%ED%A0%80%FF' : encodeURIComponent(raw);
      const [method, path] = pick([
        ['GET', `/routes/tenants/${t.id}/sandbox/messages?to=${v}`],
        ['GET', `/routes/tenants/${t.id}/conversations?limit=${v}`],
        ['GET', `/routes/tenants/${t.id}/conversations?before=${v}`],
        ['DELETE', `/routes/tenants/${t.id}/contacts?phone=${v}`],
        ['GET', `/routes/tenants/${t.id}/conversations/${v}`],
        ['DELETE', `/routes/tenants/${t.id}/contacts/${v}`],
        ['DELETE', `/routes/tenants/${t.id}/keys/${v}`],
      ]);
      cases.push({ label: `#q${i} ${method} ${path.slice(0, 80)}`, method, path, key: t.key, body: '', contentType: '' });
    }

    const before = await snapshot();
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    let next = 0;
    async function lane() {
      while (next < cases.length) {
        const c = cases[next++];
        const headers: Record<string, string> = {};
        if (c.key) headers.authorization = `Bearer ${c.key}`;
        if (c.contentType) headers['content-type'] = c.contentType;
        const res = await fetch(h.baseUrl + c.path, {
          method: c.method,
          headers,
          body: c.method === 'GET' || c.body === '' ? undefined : typeof c.body === 'string' ? c.body : new Uint8Array(c.body),
        });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status < 400 || res.status >= 500) failures.push(`${c.label}: ${res.status} ${text.slice(0, 200)}`);
        else if (!/^\{"error":\{"code":"[A-Z_]+","message":/.test(text)) failures.push(`${c.label}: error body ${text.slice(0, 200)}`);
      }
    }
    await Promise.all(Array.from({ length: 4 }, lane));
    assert.ok(cases.length >= 1000);
    assert.deepEqual(failures, [], `${failures.length} non-4xx answers`);
    assert.deepEqual(await snapshot(), before, 'the database changed');
    assert.ok(statuses.size >= 4, `a spread of 4xx answers: ${JSON.stringify([...statuses])}`);
    // The API is still healthy afterwards.
    assert.equal((await h.request('GET', '/')).status, 200);
  });
});
