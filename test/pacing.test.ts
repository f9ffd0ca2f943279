import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import { createServices, type Services } from '../core/platform/services.js';
import type { Providers } from '../core/providers/index.js';
import { createWorker } from '../worker/create-worker.js';
import { slotSpacingSeconds } from '../core/providers/pacing.js';
import { createHarness, uniquePhone, waitFor, type Harness } from './helpers/harness.js';
import { FakeProvider } from './helpers/fake-providers.js';
import { metaPayload, metaText, postMeta } from './helpers/webhooks.js';

const RATE = 5;
const MESSAGES = 20;

/** The most events inside any window of `windowMs` (default 1 s). */
function maxPerSecond(times: number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[j] <= sorted[i] - windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('pacing: two worker replicas sending to one number', () => {
  let h: Harness;
  let second: Services;
  const meta = new FakeProvider('meta', { token: 'tok' });
  const workers: { worker: Worker; done: Promise<void>; close: () => Promise<void> }[] = [];
  const issued: { worker: number; at: number }[] = [];

  /** Each replica's providers, noting when a request is issued (after its slot was granted). */
  const counting = (providers: Providers, worker: number): Providers => ({
    forChannel(channel) {
      const p = providers.forChannel(channel);
      return {
        name: p.name,
        reconcileBy: p.reconcileBy,
        sendText: (m) => {
          issued.push({ worker, at: performance.now() });
          return p.sendText(m);
        },
      };
    },
  });

  before(async () => {
    await meta.start();
    h = await createHarness({ worker: false });
    second = await createServices(h.config, h.databaseUrl);
    for (const [i, runtime] of [h.runtime, second].entries()) {
      const { worker, connection } = await createWorker({
        address: h.config.TEMPORAL_ADDRESS!,
        namespace: h.config.TEMPORAL_NAMESPACE,
        taskQueue: h.config.TEMPORAL_TASK_QUEUE,
        db: runtime.db,
        keyring: runtime.keyring,
        providers: counting(runtime.providers, i),
        workflowBundlePath: h.config.PARLEY_WORKFLOW_BUNDLE,
      });
      workers.push({ worker, done: worker.run(), close: () => connection.close() });
    }
  });
  after(async () => {
    for (const w of workers) {
      w.worker.shutdown();
      await w.done.catch(() => undefined);
      await w.close();
    }
    await second.pool.end();
    await h.close();
    await meta.close();
  });

  it(`never sends faster than ${RATE}/s to the number, across both replicas`, async () => {
    const tenant = await h.createTenant();
    const pnid = String(randomBytes(4).readUInt32BE());
    const res = await h.request('POST', `/routes/tenants/${tenant.id}/channels`, {
      key: tenant.key,
      body: {
        provider: 'meta',
        credentials: { phone_number_id: pnid, access_token: 'tok', app_secret: 'sec', verify_token: 'v' },
        api_base_url: meta.url,
        rate_per_second: RATE,
      },
    });
    assert.equal(res.status, 201);
    const messages = Array.from({ length: MESSAGES }, (_, i) => metaText(uniquePhone(), `question ${i}`));
    const ack = await postMeta(h.baseUrl, metaPayload(pnid, { messages }), 'sec');
    assert.deepEqual(ack.body, { accepted: MESSAGES, duplicates: 0, statuses: 0 });

    await waitFor(async () => meta.sends().length >= MESSAGES, { timeoutMs: 60_000, what: `${MESSAGES} sends` });
    const arrivals = meta.sends().map((r) => r.at);
    const issuedAt = issued.map((i) => i.at);
    assert.equal(issued.length, MESSAGES, 'each reply sent once');
    assert.ok(
      new Set(issued.map((i) => i.worker)).size === 2,
      `both replicas sent (${issued.filter((i) => i.worker === 0).length}/${issued.filter((i) => i.worker === 1).length})`,
    );
    assert.ok(maxPerSecond(issuedAt) <= RATE, `at most ${RATE} requests issued in any second (saw ${maxPerSecond(issuedAt)})`);
    // Arrivals add network jitter on top of the issue times; they must still be paced.
    assert.ok(maxPerSecond(arrivals) <= RATE + 1, `arrivals paced (saw ${maxPerSecond(arrivals)} in one second)`);
    const span = Math.max(...issuedAt) - Math.min(...issuedAt);
    // Slots are >= (1 + tolerance) / rate apart; each send starts within the tolerance after its slot.
    const minimum = (MESSAGES - 1) * slotSpacingSeconds(RATE, 20) * 1000 - 20;
    assert.ok(span >= minimum, `spread over at least ${minimum} ms (took ${Math.round(span)} ms)`);
  });
});
