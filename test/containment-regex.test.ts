import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { maskPii } from '../core/ai/mask.js';
import { htmlToText, markdownToText } from '../core/knowledge/documents.js';
import { applyConsentKeyword } from '../core/pulse/contacts.js';
import { createHarness, waitFor, type Harness } from './helpers/harness.js';

/** Patterns that backtrack catastrophically on a backtracking engine; RE2 runs them in linear time. */
const CATASTROPHIC = ['(a+)+$', '(a|aa)*b', '(.*a){20}x', '^(\\w+\\s?)*$', '(?<order_id>(\\d+)+)!', '(x+x+)+y'];
/** What RE2 cannot run: backreferences, lookarounds, oversized repetitions. */
const REFUSED = ['(a)\\1', '(?=a)b', '(?<!x)y', '(?<x>a)\\k<x>', 'a{5000}'];

/** The attacked timing may be slower than the baseline by a generous factor, never by seconds. */
const withinBaseline = (attacked: number, baseline: number) => attacked < 3 * baseline + 300;

async function timed<T>(f: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await f();
  return { ms: performance.now() - started, value };
}

describe('containment: tenant patterns and adversarial text cost linear time', () => {
  let h: Harness;
  let attacker: { id: string; key: string };
  let victim: { id: string; key: string };

  before(async () => {
    h = await createHarness();
    attacker = await h.createTenant();
    victim = await h.createTenant();
    // A source served by the tenant's own worker: no host to reach, only ids for the intents.
    const put = await h.request('PUT', `/routes/tenants/${attacker.id}/data-sources`, {
      key: attacker.key,
      body: {
        data_sources: [
          {
            id: 'crm',
            name: 'CRM',
            type: 'postgresql',
            served_by: 'tenant_worker',
            queries: { by_phone: 'SELECT status FROM orders WHERE phone = $1' },
          },
        ],
      },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });
  after(() => h?.close());

  const intent = (patterns: string[]) => ({
    id: 'orders',
    patterns,
    data_source: 'crm',
    query: 'by_phone',
    params: ['customer_phone'],
    reply_template: 'Status: {{status}}',
  });
  const putIntents = (patterns: string[]) =>
    h.request('PUT', `/routes/tenants/${attacker.id}/intents`, { key: attacker.key, body: { intents: [intent(patterns)] } });

  it('refuses at PUT a pattern that needs backtracking, naming the field and the reason; nothing changes', async () => {
    assert.equal((await putIntents(['order (?<n>\\d+)'])).status, 200);
    const before = await h.request('GET', `/routes/tenants/${attacker.id}/intents`, { key: attacker.key });
    for (const pattern of REFUSED) {
      const res = await putIntents(['order', pattern]);
      assert.equal(res.status, 400, `${pattern}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, /body\.intents\.0\.patterns\.1/, pattern);
      assert.match(res.body.error.message, /RE2/, pattern);
    }
    const after = await h.request('GET', `/routes/tenants/${attacker.id}/intents`, { key: attacker.key });
    assert.deepEqual(after.body, before.body);
  });

  it("a catastrophic intent pattern and adversarial messages leave /health and another tenant's reply as fast as without them", async () => {
    async function measure() {
      const health: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await timed(() => h.request('GET', '/health'));
        assert.equal(r.value.status, 200);
        health.push(r.ms);
      }
      const reply = await h.ask(victim, 'hello, are you open today?');
      return { health: health.reduce((a, b) => a + b) / health.length, reply: reply.ms };
    }
    // Warm up (first workflow, first query plans), then the baseline.
    await h.ask(victim, 'warm up');
    const baseline = await measure();

    assert.equal((await putIntents(CATASTROPHIC)).status, 200, 'RE2 runs these patterns, so they are accepted');
    const evil = ['a'.repeat(1999) + '!', 'x'.repeat(1998) + '!', '1'.repeat(1999) + 'z', 'a '.repeat(999) + '!'];
    // The API process matches patterns for nl-query; the worker for every inbound message.
    const attack = Promise.all([
      ...evil.map((question) =>
        h.request('POST', '/routes/data/nl-query', { key: attacker.key, body: { tenant_id: attacker.id, question } }),
      ),
      ...evil.map((message) => h.ask(attacker, message)),
      h.request('POST', `/routes/tenants/${attacker.id}/knowledge/documents`, {
        key: attacker.key,
        body: { title: 'evil', content: '<'.repeat(50_000) + '<!--'.repeat(12_500), content_type: 'text/html' },
      }),
    ]);
    const attacked = await measure();
    const results = await attack;
    for (const r of results.slice(0, evil.length) as { status: number; body: any }[]) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.matched, false);
    }
    assert.ok(
      withinBaseline(attacked.health, baseline.health),
      `/health: ${attacked.health.toFixed(1)} ms under attack vs ${baseline.health.toFixed(1)} ms`,
    );
    assert.ok(
      withinBaseline(attacked.reply, baseline.reply),
      `other tenant's reply: ${attacked.reply} ms under attack vs ${baseline.reply} ms`,
    );
    const doc = results.at(-1) as { status: number; body: any };
    assert.equal(doc.status, 202, JSON.stringify(doc.body));
    await waitFor(
      async () => {
        const res = await h.request('GET', `/routes/tenants/${attacker.id}/knowledge/documents/${doc.body.id}`, { key: attacker.key });
        return (res.body.status === 'ready' || res.body.status === 'failed') && res.body;
      },
      { timeoutMs: 30_000, what: 'the adversarial document to be processed' },
    );
  });

  it('a stored pattern matches with its named groups on RE2', async () => {
    const put = await h.request('PUT', `/routes/tenants/${attacker.id}/intents`, {
      key: attacker.key,
      body: { intents: [{ ...intent(['ORDER #?(?<order_id>\\d+)']), params: ['order_id'] }] },
    });
    // by_phone takes one positional parameter: order_id fills it.
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const res = await h.request('POST', '/routes/data/nl-query', {
      key: attacker.key,
      body: { tenant_id: attacker.id, question: 'where is order #4711?' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.matched, true);
    assert.deepEqual(res.body.parameters, { order_id: '4711' });
  });

  it("100 KB adversarial texts cost about what benign text of the same size costs in Parley's own regexes", async () => {
    const n = 100_000;
    const benign = 'Hello, I would like to know when my order arrives. Thanks! '.repeat(n / 60).slice(0, n);
    const cases: [string, (s: string) => unknown, string[]][] = [
      ['maskPii', maskPii, ['1'.repeat(n) + 'x', '1-'.repeat(n / 2) + 'x', 'a'.repeat(n) + '@', '.'.repeat(n), 'a@' + 'a.'.repeat(n / 2)]],
      [
        'htmlToText',
        htmlToText,
        ['<'.repeat(n), '<script>'.repeat(n / 8), '<!--'.repeat(n / 4), '<br'.repeat(n / 3), '<div>'.repeat(n / 5)],
      ],
      [
        'markdownToText',
        markdownToText,
        ['['.repeat(n), '!['.repeat(n / 2), '[a]('.repeat(n / 4), '**a'.repeat(n / 3), '_a '.repeat(n / 3)],
      ],
      [
        'consent keywords',
        (text) => applyConsentKeyword(h.runtime.db, { tenantId: attacker.id, contactId: null, settings: {}, texts: [text] }),
        ['a' + ' '.repeat(n) + 'b', 'STOP' + '.'.repeat(n) + 'x', '!'.repeat(n) + '?'],
      ],
    ];
    for (const [name, f, inputs] of cases) {
      const base = await timed(() => f(benign));
      for (const input of inputs) {
        const attacked = await timed(() => f(input));
        assert.ok(
          withinBaseline(attacked.ms, base.ms),
          `${name} on ${JSON.stringify(input.slice(0, 12))}…: ${attacked.ms.toFixed(1)} ms vs ${base.ms.toFixed(1)} ms`,
        );
      }
    }
    assert.equal(maskPii('call +49 170 1234567 or a.b@example.com'), 'call [phone] or [email]');
    assert.equal(htmlToText('<p>a<script>x</script>b</p>').trim(), 'a b');
    assert.equal(markdownToText('**bold** [link](http://x)'), 'bold link');
  });
});
