import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { ms, parseArgs, summarize } from './lib/stats.js';
import { jsonClient } from './lib/http-client.js';
import { startStack } from './lib/stack.js';

/**
 * `npm run bench:events -- [--rate 50] [--duration 60] [--contacts 200] [--grace 60]`
 * Inbound conversation traffic at `rate` msg/s, split evenly between two tenants in one run: one
 * with two webhook endpoints subscribed to every event (local receivers answering 200), one with
 * none. Prints event delivery lag (fact → receiver) p50/p99, events/s, duplicates (ids seen with
 * two different bodies, which must be 0; ids delivered twice) and the inbound→reply latency of
 * both tenants side by side: the cost of events to conversations.
 */
const opts = parseArgs({ rate: 50, duration: 60, contacts: 200, grace: 60 });
const QUESTIONS = ['When are you open?', 'How long does shipping take?', 'Can I return an item?'];
const KNOWLEDGE = [
  { title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' },
  { title: 'Shipping', content: 'Orders ship within 2 business days.' },
  { title: 'Returns', content: 'Returns are free within 30 days with the receipt.' },
];

/** A receiver: records each event's arrival and body, answers 200. */
async function receiver() {
  const seen: { id: string; body: string; createdAt: number; at: number }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const at = Date.now();
      const e = JSON.parse(body) as { id: string; created_at: string };
      seen.push({ id: e.id, body, createdAt: Date.parse(e.created_at), at });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, close: () => server.close() };
}

const stack = await startStack({ EGRESS_ALLOW: '127.0.0.1/32' });
const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });
const receivers = [await receiver(), await receiver()];
try {
  const client = jsonClient(stack.baseUrl);
  const call = client.call;

  const tenants: Record<string, string> = {};
  for (const id of ['with-events', 'no-events']) {
    const t = await call('/routes/tenants', stack.adminKey, { id, name: id });
    tenants[id] = t.body.api_key;
    await call(`/routes/tenants/${id}/knowledge`, tenants[id], { entries: KNOWLEDGE }, 'PUT');
  }
  for (const r of receivers) {
    const ep = await call('/routes/tenants/with-events/webhook-endpoints', tenants['with-events'], { url: r.url, events: ['*'] });
    if (ep.status !== 201) throw new Error(`endpoint: ${ep.status} ${JSON.stringify(ep.body)}`);
  }
  // Warm both tenants' paths (the worker bundles its workflows on first use).
  for (const id of Object.keys(tenants)) {
    await call('/webhook/inbound', tenants[id], {
      from: '+15559999999',
      message: 'hello',
      tenant_id: id,
      timestamp: new Date().toISOString(),
    });
  }
  for (let i = 0; ; i++) {
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM sandbox_messages');
    if (rows[0].n >= 2) break;
    if (i > 2400) throw new Error('the worker never answered the warm-up messages');
    await delay(50);
  }
  const warmEvents = receivers.map((r) => r.seen.length);

  console.error(`[bench] ${opts.rate} msg/s for ${opts.duration} s, half to a tenant with two endpoints, half to one without…`);
  const start = Date.now();
  let sent = 0;
  let errors = 0;
  const inflight = new Set<Promise<void>>();
  while (Date.now() - start < opts.duration * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * opts.rate);
    while (sent < due) {
      const i = sent++;
      const id = i % 2 === 0 ? 'with-events' : 'no-events';
      const body = {
        from: `+1555${String(1_000_000 + ((i >> 1) % opts.contacts))}`,
        message: QUESTIONS[i % 3],
        tenant_id: id,
        timestamp: new Date().toISOString(),
      };
      const p = call('/webhook/inbound', tenants[id], body).then(
        (r) => void (r.status === 202 || errors++),
        () => void errors++,
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await delay(5);
  }
  await Promise.all(inflight);
  const replyLatency = async () =>
    (
      await pool.query<{ tenant_id: string; ms: number | null }>(
        `SELECT m.tenant_id, (SELECT extract(epoch FROM min(s.sent_at) - m.created_at) * 1000 FROM sandbox_messages s WHERE m.id = ANY(s.in_reply_to)) AS ms
           FROM messages m WHERE m.direction = 'inbound' AND m.created_at >= $1`,
        [new Date(start)],
      )
    ).rows;
  const expectedEvents = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM event_deliveries`)).rows[0].n;
  const graceEnd = Date.now() + opts.grace * 1000;
  while (Date.now() < graceEnd) {
    const rows = await replyLatency();
    const delivered = receivers.reduce((n, r) => n + new Set(r.seen.map((s) => s.id)).size, 0);
    if (rows.every((r) => r.ms !== null) && delivered >= (await expectedEvents())) break;
    await delay(500);
  }

  const rows = await replyLatency();
  for (const id of Object.keys(tenants)) {
    const mine = rows.filter((r) => r.tenant_id === id);
    const s = summarize(mine.filter((r) => r.ms !== null).map((r) => Number(r.ms)));
    console.log(
      `inbound→reply ${id.padEnd(12)} n=${s.n} unanswered=${mine.length - s.n} p50=${ms(s.p50)} p99=${ms(s.p99)} max=${ms(s.max)}`,
    );
  }
  const all = receivers.flatMap((r, i) => r.seen.slice(warmEvents[i]));
  const lag = summarize(all.map((e) => e.at - e.createdAt));
  const bodies = new Map<string, Set<string>>();
  const counts = new Map<string, number>();
  for (const r of receivers)
    for (const e of r.seen) {
      bodies.set(e.id, (bodies.get(e.id) ?? new Set()).add(e.body));
      counts.set(`${receivers.indexOf(r)}:${e.id}`, (counts.get(`${receivers.indexOf(r)}:${e.id}`) ?? 0) + 1);
    }
  const span = (Math.max(...all.map((e) => e.at)) - Math.min(...all.map((e) => e.at))) / 1000;
  const deliveries = await expectedEvents();
  const received = [...counts.keys()].length;
  console.log(`event lag fact→receiver n=${lag.n} p50=${ms(lag.p50)} p99=${ms(lag.p99)} max=${ms(lag.max)}`);
  console.log(`events/s ${(all.length / Math.max(span, 0.001)).toFixed(1)} (both endpoints) over ${span.toFixed(1)} s`);
  console.log(`deliveries recorded=${deliveries} received(distinct per endpoint)=${received} missing=${deliveries - received}`);
  console.log(
    `duplicates: ids with two different bodies=${[...bodies.values()].filter((b) => b.size > 1).length} ids delivered twice to one endpoint=${[...counts.values()].filter((n) => n > 1).length}`,
  );
  console.log(`sent=${sent} errors=${errors}`);
  client.close();
} finally {
  receivers.forEach((r) => r.close());
  await pool.end();
  await stack.stop();
}
