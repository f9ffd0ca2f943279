import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { FakeProvider, metaChannelBody } from '../test/helpers/fake-providers.js';
import { startStack, type Stack } from './lib/stack.js';
import { ms, parseArgs, summarize } from './lib/stats.js';

/**
 * `npm run bench:sends`: does one tenant's slow provider slow the others' `POST /messages/send`?
 * Parley runs as `npm start` does; the slow tenant sends through a fake Meta Cloud API that
 * answers after --provider-ms. Phase 1: the other tenant alone (closed loop, --concurrency
 * clients, --duration seconds). Phase 2: the same while the slow tenant keeps --slow-clients
 * sends open, each retrying after a 429 SEND_CAP_REACHED. Prints the other tenant's p50/p99
 * per phase and what the slow tenant got.
 */
const args = parseArgs({ duration: 20, concurrency: 4, slowClients: 50, providerMs: 3000 });
const say = (line: string) => process.stdout.write(`${line}\n`);
const phone = () => `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
type Tenant = { id: string; key: string };

async function call(stack: Stack, method: string, url: string, key: string, body?: unknown) {
  const res = await fetch(stack.baseUrl + url, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function tenant(stack: Stack): Promise<Tenant> {
  const id = `bench-${randomBytes(4).toString('hex')}`;
  const res = await call(stack, 'POST', '/routes/tenants', stack.adminKey, { id, name: id });
  if (res.status !== 201) throw new Error(`create tenant: ${res.status}`);
  return { id, key: res.body.api_key };
}

/** Sends until `until`, `clients` at a time; returns each 200's latency and how many were capped. */
async function load(stack: Stack, t: Tenant, clients: number, until: () => boolean) {
  const latencies: number[] = [];
  let capped = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (!until()) {
        const started = performance.now();
        const res = await call(stack, 'POST', '/messages/send', t.key, { to: phone(), message: 'your table is ready', tenant_id: t.id });
        if (res.status === 200) latencies.push(performance.now() - started);
        else if (res.status === 429) {
          capped++;
          await delay(100);
        } else failed++;
      }
    }),
  );
  return { latencies, capped, failed };
}

const slow = new FakeProvider('meta', { token: 'meta-token' });
await slow.start();
slow.beforeAnswer = () => delay(args.providerMs);
const stack = await startStack({ EGRESS_ALLOW: '127.0.0.1/32' });
try {
  const other = await tenant(stack);
  const channels = await call(stack, 'GET', `/routes/tenants/${other.id}/channels`, other.key);
  // A first message to a number is outside the 24-hour window: the reopen template lets it out.
  await call(stack, 'PATCH', `/routes/tenants/${other.id}/channels/${channels.body.channels[0].id}`, other.key, {
    template: { name: 'reopen_conversation', language: 'en_US' },
  });
  const noisy = await tenant(stack);
  await call(stack, 'POST', `/routes/tenants/${noisy.id}/channels`, noisy.key, {
    ...metaChannelBody(slow.url),
    template: { name: 'reopen_conversation', language: 'en_US' },
  });

  const phase = (seconds: number) => {
    const end = Date.now() + seconds * 1000;
    return () => Date.now() >= end;
  };
  const alone = await load(stack, other, args.concurrency, phase(args.duration));
  const done = phase(args.duration);
  const [beside, noisyLoad] = await Promise.all([load(stack, other, args.concurrency, done), load(stack, noisy, args.slowClients, done)]);

  const a = summarize(alone.latencies);
  const b = summarize(beside.latencies);
  say(`other tenant alone:            n=${a.n} p50=${ms(a.p50)} p99=${ms(a.p99)} max=${ms(a.max)} failed=${alone.failed}`);
  say(`other tenant beside slow one:  n=${b.n} p50=${ms(b.p50)} p99=${ms(b.p99)} max=${ms(b.max)} failed=${beside.failed}`);
  say(
    `slow tenant (${args.providerMs} ms provider, ${args.slowClients} clients): sent=${noisyLoad.latencies.length} ` +
      `capped (429)=${noisyLoad.capped} failed=${noisyLoad.failed}`,
  );
} finally {
  await stack.stop();
  await slow.close();
}
