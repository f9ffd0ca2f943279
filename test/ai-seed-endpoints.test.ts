import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHarness, type Harness } from './helpers/harness.js';
import { FakeOpenAi, lastUserText } from './helpers/fake-openai.js';
import { fakeInventory, type FakeSource } from './helpers/fake-sources.js';

const INVENTORY_KEY = 'inv-secret-key-4242';

/** The LLM paths of the seed endpoints /routes/data/nl-query and /routes/context/pulse-content. */
describe('AI seed endpoints: nl-query and pulse-content with an LLM', () => {
  let h: Harness;
  let fake: FakeOpenAi;
  let inventory: FakeSource;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  const profile = () => ({
    base_url: fake.baseUrl,
    api_key: 'sk-test-seed-0001',
    chat_model: 'test-chat',
    embedding_model: 'test-embed',
    tone: 'warm',
  });
  const nlQuery = (t: { id: string; key: string }, question: string, customer_phone?: string) =>
    h.request('POST', '/routes/data/nl-query', {
      key: t.key,
      body: { tenant_id: t.id, question, ...(customer_phone ? { customer_phone } : {}) },
    });

  const inventorySource = () => ({
    data_sources: [
      {
        id: 'inventory_api',
        name: 'Inventory System',
        type: 'rest_api',
        connection: { base_url: `${inventory.url}/api`, api_key: INVENTORY_KEY, headers: { Authorization: 'Bearer {api_key}' } },
        endpoints: { check_stock: '/products/{sku}/stock', by_phone: '/customers/{customer_phone}' },
      },
    ],
  });

  before(async () => {
    h = await createHarness();
    fake = await new FakeOpenAi().start();
    inventory = await fakeInventory(INVENTORY_KEY).start();
    a = await h.createTenant();
    b = await h.createTenant();
    assert.equal((await h.request('PUT', `/routes/tenants/${a.id}/ai`, { key: a.key, body: profile() })).status, 200);
    const sources = await h.request('PUT', `/routes/tenants/${a.id}/data-sources`, { key: a.key, body: inventorySource() });
    assert.equal(sources.status, 200, JSON.stringify(sources.body));
    const intents = await h.request('PUT', `/routes/tenants/${a.id}/intents`, {
      key: a.key,
      body: {
        intents: [
          {
            id: 'stock',
            patterns: ['is (?<sku>SKU-\\d+) in stock'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: '{{name}}: {{quantity}} in stock',
          },
          {
            id: 'my_account',
            patterns: ['^my account$'],
            data_source: 'inventory_api',
            query: 'by_phone',
            params: ['customer_phone'],
            reply_template: 'ok',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    // Tenant B's own intent must never be offered to tenant A's model.
    assert.equal((await h.request('PUT', `/routes/tenants/${b.id}/data-sources`, { key: b.key, body: inventorySource() })).status, 200);
    const bIntents = await h.request('PUT', `/routes/tenants/${b.id}/intents`, {
      key: b.key,
      body: {
        intents: [
          {
            id: 'b_secret',
            patterns: ['^b secret (?<sku>.+)$'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: 'B',
          },
        ],
      },
    });
    assert.equal(bIntents.status, 200, JSON.stringify(bIntents.body));
  });

  after(async () => {
    await h?.close();
    await fake?.close();
    await inventory?.stop();
  });

  it('nl-query: the LLM picks the intent and its parameters, the lookup returns the live value', async () => {
    fake.chat = (body) => (body.tools ? { toolCalls: [{ name: 'stock', arguments: { sku: 'SKU-789' } }] } : { content: 'unexpected' });
    const before = fake.chatRequests().length;
    const res = await nlQuery(a, 'do you still have blue kettles (SKU-789)? call me on +351 912 345 678', '+15550009999');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.matched, true);
    assert.equal(res.body.source, 'llm');
    assert.equal(res.body.intent, 'stock');
    assert.deepEqual(res.body.parameters, { sku: 'SKU-789' });
    assert.equal(res.body.result.ok, true);
    assert.equal(res.body.reply, 'Blue kettle: 14 in stock');

    const [req] = fake.chatRequests().slice(before);
    assert.deepEqual(req.body.tools.map((t: any) => t.function.name).sort(), ['my_account', 'stock'], "only this tenant's intents");
    const account = req.body.tools.find((t: any) => t.function.name === 'my_account');
    assert.deepEqual(account.function.parameters.properties, {}, 'customer_phone is never asked of the model');
    assert.deepEqual(req.body.tools.find((t: any) => t.function.name === 'stock').function.parameters.properties, {
      sku: { type: 'string' },
    });
    assert.doesNotMatch(lastUserText(req.body), /912 345 678/, 'phone numbers are masked');
    assert.doesNotMatch(JSON.stringify(req.body), /15550009999/);

    const usage = await h.request('GET', `/routes/tenants/${a.id}/ai/usage`, { key: a.key });
    assert.ok(usage.body.prompt_tokens >= 100 && usage.body.completion_tokens >= 20, JSON.stringify(usage.body));
  });

  it('nl-query: a rule match does not call the LLM; LLM down falls back to the rule-based answer', async () => {
    const before = fake.chatRequests().length;
    const rule = await nlQuery(a, 'is SKU-789 in stock?');
    assert.equal(rule.body.source, 'rules');
    assert.equal(rule.body.reply, 'Blue kettle: 14 in stock');
    assert.equal(fake.chatRequests().length, before);

    fake.chat = () => ({ status: 500 });
    const down = await nlQuery(a, 'do you still have blue kettles (SKU-789)?');
    assert.equal(down.status, 200, JSON.stringify(down.body));
    assert.equal(down.body.matched, false);
    assert.equal(down.body.source, null);
    assert.equal(fake.chatRequests().length, before + 1, 'the LLM was tried once');

    fake.chat = () => ({ toolCalls: [{ name: 'b_secret', arguments: { sku: 'SKU-789' } }] });
    assert.equal((await nlQuery(a, 'something else entirely')).body.matched, false, "another tenant's intent from the model is no match");
  });

  it('nl-query: with the monthly budget spent the LLM is not asked', async () => {
    const t = await h.createTenant();
    assert.equal(
      (await h.request('PUT', `/routes/tenants/${t.id}/ai`, { key: t.key, body: { ...profile(), monthly_token_budget: 1 } })).status,
      200,
    );
    await h.runtime.pool.query(
      `INSERT INTO ai_usage (tenant_id, purpose, model, prompt_tokens, completion_tokens) VALUES ($1, 'chat', 'test-chat', 5, 5)`,
      [t.id],
    );
    assert.equal((await h.request('PUT', `/routes/tenants/${t.id}/data-sources`, { key: t.key, body: inventorySource() })).status, 200);
    const intents = await h.request('PUT', `/routes/tenants/${t.id}/intents`, {
      key: t.key,
      body: {
        intents: [
          {
            id: 'stock',
            patterns: ['is (?<sku>SKU-\\d+) in stock'],
            data_source: 'inventory_api',
            query: 'check_stock',
            params: ['sku'],
            reply_template: '{{quantity}}',
          },
        ],
      },
    });
    assert.equal(intents.status, 200, JSON.stringify(intents.body));
    const before = fake.chatRequests().length;
    const res = await nlQuery(t, 'do you still have blue kettles (SKU-789)?');
    assert.equal(res.body.matched, false);
    assert.equal(fake.chatRequests().length, before);
  });

  it('pulse-content: with an AI profile the LLM writes the message (contact details masked)', async () => {
    fake.chat = (body) => ({
      content: body.messages.some((m: any) => String(m.content).includes('Porto'))
        ? 'Olá Ana! Our Porto store has your VIP offer.'
        : 'no facts',
    });
    const before = fake.chatRequests().length;
    const res = await h.request('POST', '/routes/context/pulse-content', {
      key: a.key,
      body: {
        tenant_id: a.id,
        template: 'Hi {{first_name}}',
        variants: [{ tags: ['vip'], template: 'Dear {{name}}, VIP offer in {{city}}' }],
        contact: { name: 'Ana Lima', tags: ['vip'], attributes: { city: 'Porto', email: 'ana.lima@example.com', mobile: '+351912345678' } },
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, {
      content: 'Olá Ana! Our Porto store has your VIP offer.',
      variant: 'variant:0',
      contact_id: null,
      source: 'llm',
    });
    const [req] = fake.chatRequests().slice(before);
    assert.match(JSON.stringify(req.body), /Dear \{\{name\}\}, VIP offer/, 'the chosen template goes to the model');
    assert.doesNotMatch(JSON.stringify(req.body), /ana\.lima@example\.com|351912345678/);

    fake.chat = () => ({ status: 503 });
    const down = await h.request('POST', '/routes/context/pulse-content', {
      key: a.key,
      body: { tenant_id: a.id, template: 'Hi {{first_name}}', contact: { name: 'Ana Lima' } },
    });
    assert.deepEqual(down.body, { content: 'Hi Ana', variant: 'default', contact_id: null, source: 'rules' });
  });

  it('pulse-content and nl-query without an AI profile answer by rules', async () => {
    const before = fake.chatRequests().length;
    const res = await h.request('POST', '/routes/context/pulse-content', {
      key: b.key,
      body: {
        tenant_id: b.id,
        template: 'Hi {{first_name}}',
        variants: [{ tags: ['vip'], template: 'Dear {{name}}, VIP offer' }],
        contact: { name: 'Bo Chen', tags: ['vip'] },
      },
    });
    assert.deepEqual(res.body, { content: 'Dear Bo Chen, VIP offer', variant: 'variant:0', contact_id: null, source: 'rules' });
    const nl = await nlQuery(b, 'is SKU-789 in stock?');
    assert.equal(nl.body.matched, false, "tenant B cannot reach tenant A's intents");
    assert.equal(fake.chatRequests().length, before);
  });
});
