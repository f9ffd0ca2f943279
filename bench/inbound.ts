import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { cpuByCommand, ms, parseArgs, summarize } from './lib/stats.js';
import { jsonClient } from './lib/http-client.js';
import { startStack } from './lib/stack.js';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';

/**
 * `npm run bench -- [--rate 50] [--duration 60] [--contacts 200] [--warmup 15]`
 * Drives inbound messages at a fixed rate through POST /webhook/inbound, spread over many
 * concurrent conversations, into the sandbox provider, and prints webhook ack latency,
 * inbound-to-reply latency, the sustained rate, the backlog over time and lost/duplicated replies.
 * Latencies leave out the first `warmup` seconds (JIT, connection pools, the first workflow of
 * each conversation); counts, loss and duplicates cover every message.
 */
const opts = parseArgs({ rate: 50, duration: 60, contacts: 200, grace: 30, warmup: 10 });
const QUESTIONS = ['When are you open?', 'How long does shipping take?', 'Can I return an item?', 'Do you ship abroad?'];
const KNOWLEDGE = [
  { title: 'Opening hours', content: 'We are open Monday to Friday, 9am to 5pm.' },
  { title: 'Shipping', content: 'Orders ship within 2 business days; delivery takes 3-5 days. We ship abroad too.' },
  { title: 'Returns', content: 'Returns are free within 30 days with the receipt.' },
];

const stack = await startStack();
const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 });

/**
 * Workflow tasks that timed out or failed, in every run of every workflow on the bench's own
 * Temporal server (a conversation continues as new, so its latest run alone would miss some).
 */
async function workflowTaskProblems(): Promise<{ timedOut: number; failed: number }> {
  const { EventType } = proto.temporal.api.enums.v1;
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection });
  const counts = { timedOut: 0, failed: 0 };
  try {
    for await (const run of client.workflow.list()) {
      const { events } = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      for (const event of events ?? []) {
        if (event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT) counts.timedOut++;
        if (event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) counts.failed++;
      }
    }
  } finally {
    await connection.close();
  }
  return counts;
}
try {
  const client = jsonClient(stack.baseUrl);
  const post = client.call;
  const tenant = await post('/routes/tenants', stack.adminKey, { id: 'bench', name: 'Bench Ltd' });
  const key: string = tenant.body.api_key;
  await post('/routes/tenants/bench/knowledge', key, { entries: KNOWLEDGE }, 'PUT');
  const phones = Array.from({ length: opts.contacts }, (_, i) => `+1555${String(1_000_000 + i)}`);

  // The API answers before the worker has bundled its workflows: one answered message first.
  const probe = await post('/webhook/inbound', key, {
    from: '+15559999999',
    message: 'hello',
    tenant_id: 'bench',
    timestamp: new Date().toISOString(),
  });
  for (let i = 0; ; i++) {
    const { rows } = await pool.query('SELECT 1 FROM sandbox_messages WHERE $1 = ANY(in_reply_to)', [probe.body.message_id]);
    if (rows.length > 0) break;
    if (i > 1200) throw new Error('the worker never answered the probe message');
    await delay(50);
  }

  const sentAt = new Map<string, number>();
  const measured = new Set<string>();
  const ackMs: number[] = [];
  const replyMs: number[] = [];
  const answeredAtById = new Map<string, number>();
  // Per 10-second window of the send time: when the slow ones happened, not only how slow.
  const windows = new Map<number, { ack: number[]; reply: number[] }>();
  const inWindow = (t0: number) => {
    const w = Math.floor((t0 - start) / 10_000);
    if (!windows.has(w)) windows.set(w, { ack: [], reply: [] });
    return windows.get(w)!;
  };
  const replies = new Map<string, number>();
  let errors = 0;
  const inflight = new Set<Promise<void>>();

  // One poller reads replies straight from the sandbox table: no extra HTTP load on the API.
  // Latency comes from each reply's sent_at, so polling every 250 ms loses no precision, and
  // the index (on the bench's scratch database only) keeps the poller from scanning a growing
  // table: the observer must not be what loads the machine.
  await pool.query('CREATE INDEX IF NOT EXISTS bench_sandbox_sent_at ON sandbox_messages (sent_at)');
  let pollFrom = new Date(0);
  const seenReplies = new Set<string>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const { rows } = await pool.query<{ id: string; in_reply_to: string[]; t: Date }>(
        'SELECT id, in_reply_to, sent_at AS t FROM sandbox_messages WHERE sent_at >= $1 ORDER BY sent_at',
        [new Date(pollFrom.getTime() - 2000)],
      );
      for (const r of rows) {
        if (seenReplies.has(r.id)) continue;
        seenReplies.add(r.id);
        if (r.t > pollFrom) pollFrom = r.t;
        for (const id of r.in_reply_to ?? []) {
          replies.set(id, (replies.get(id) ?? 0) + 1);
          const t0 = sentAt.get(id);
          if (t0 !== undefined && replies.get(id) === 1 && measured.has(id)) {
            replyMs.push(r.t.getTime() - t0);
            answeredAtById.set(id, r.t.getTime());
            inWindow(t0).reply.push(r.t.getTime() - t0);
          }
        }
      }
      await delay(250);
    }
  })();

  const cpuBefore = await cpuByCommand();
  const backlog: string[] = [];
  const start = Date.now();
  let sent = 0;
  let nextSample = start + 10_000;
  console.error(`[bench] sending ${opts.rate} msg/s for ${opts.duration} s over ${opts.contacts} conversations…`);
  while (Date.now() - start < opts.duration * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * opts.rate);
    while (sent < due) {
      const i = sent++;
      const body = {
        from: phones[i % phones.length],
        message: QUESTIONS[i % QUESTIONS.length],
        tenant_id: 'bench',
        timestamp: new Date().toISOString(),
        message_id: `bench-${i}`,
      };
      const p = (async () => {
        const t0 = Date.now();
        const res = await post('/webhook/inbound', key, body).catch(() => ({ status: 0, body: {} }));
        if (t0 - start >= opts.warmup * 1000) {
          ackMs.push(Date.now() - t0);
          inWindow(t0).ack.push(Date.now() - t0);
          measured.add(res.body.message_id);
        }
        if (res.status === 202) sentAt.set(res.body.message_id, t0);
        else errors++;
      })();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    if (Date.now() >= nextSample) {
      const answered = [...sentAt.keys()].filter((id) => replies.has(id)).length;
      backlog.push(`${Math.round((Date.now() - start) / 1000)}s:${sentAt.size - answered}`);
      nextSample += 10_000;
    }
    await delay(5);
  }
  const elapsed = (Date.now() - start) / 1000;
  await Promise.all(inflight);
  const graceEnd = Date.now() + opts.grace * 1000;
  while (Date.now() < graceEnd && [...sentAt.keys()].some((id) => !replies.has(id))) await delay(100);
  const drained = (Date.now() - start) / 1000;
  await delay(1000);
  polling = false;
  await poller;
  const cpuAfter = await cpuByCommand();
  const taskProblems = await workflowTaskProblems();

  const lost = [...sentAt.keys()].filter((id) => !replies.has(id)).length;
  const duplicated = [...replies.values()].filter((n) => n > 1).length;
  const ack = summarize(ackMs);
  const reply = summarize(replyMs);
  // Where a reply's time went: the relay (accepted → signalled into its workflow, from the outbox
  // row), then Temporal and the worker (signalled → sent).
  const { rows: relayed } = await pool.query<{ message_id: string; relay_ms: number; delivered: Date }>(
    'SELECT message_id, extract(epoch FROM delivered_at - created_at) * 1000 AS relay_ms, delivered_at AS delivered FROM outbox WHERE delivered_at IS NOT NULL',
  );
  const relayMs: number[] = [];
  const afterRelayMs: number[] = [];
  for (const r of relayed) {
    if (!measured.has(r.message_id)) continue;
    relayMs.push(Number(r.relay_ms));
    const answeredAt = answeredAtById.get(r.message_id);
    if (answeredAt !== undefined) afterRelayMs.push(answeredAt - r.delivered.getTime());
  }
  const relay = summarize(relayMs);
  const afterRelay = summarize(afterRelayMs);
  const cpu = [...cpuAfter.entries()]
    .map(([name, t]) => [name, t - (cpuBefore.get(name) ?? 0)] as const)
    .filter(([, t]) => t > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 7);

  console.log('Parley inbound benchmark (sandbox provider, default settings, everything on this machine)');
  console.log(`  offered rate            ${opts.rate} msg/s for ${opts.duration} s over ${opts.contacts} conversations`);
  console.log(`  accepted                ${sentAt.size} (errors: ${errors})`);
  console.log(
    `  sustained rate          ${(sentAt.size / elapsed).toFixed(1)} msg/s accepted, ${(sentAt.size / drained).toFixed(1)} msg/s answered (${lost === 0 ? 'all answered' : `${lost} still unanswered`} after ${drained.toFixed(1)} s)`,
  );
  console.log(`  latencies measured      after a ${opts.warmup} s warm-up: ${ack.n} acks, ${reply.n} replies`);
  console.log(`  webhook ack latency     p50 ${ms(ack.p50)}  p99 ${ms(ack.p99)}  max ${ms(ack.max)}`);
  console.log(`  inbound→reply latency   p50 ${ms(reply.p50)}  p99 ${ms(reply.p99)}  max ${ms(reply.max)}`);
  console.log(`    accepted→signalled    p50 ${ms(relay.p50)}  p99 ${ms(relay.p99)}  (the outbox relay)`);
  console.log(`    signalled→sent        p50 ${ms(afterRelay.p50)}  p99 ${ms(afterRelay.p99)}  (Temporal and the worker)`);
  const byWindow = [...windows.entries()].sort((a, b) => a[0] - b[0]);
  console.log(
    `  p99 per 10 s (ack/reply) ${byWindow.map(([w, v]) => `${w * 10}s:${summarize(v.ack).p99}/${summarize(v.reply).p99}`).join('  ')}`,
  );
  console.log(`  backlog (unanswered)    ${backlog.join('  ') || 'n/a'}`);
  console.log(`  unanswered at the end   ${lost} (after a ${opts.grace} s grace period: lost, or a backlog not yet drained)`);
  console.log(`  duplicated replies      ${duplicated}`);
  console.log(
    `  workflow tasks          ${taskProblems.timedOut} timed out, ${taskProblems.failed} failed (each delays its conversation by the task timeout, 10 s)`,
  );
  console.log(`  CPU seconds by process  ${cpu.map(([n, t]) => `${n}=${t}`).join('  ')}`);
  client.close();
} finally {
  await pool.end();
  await stack.stop();
}
