import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Providers } from '../core/providers/index.js';
import { createPulseActivities } from '../activities/pulse.js';
import type { PulsePageInput, PulsePageResult, PulseRunConfig } from '../contracts/pulse.js';
import {
  createHarness,
  createTemporalClient,
  TEST_ADMIN_KEY,
  TEST_ENCRYPTION_KEY,
  testKeyring,
  testTemporalAddress,
  uniquePhone,
  waitFor,
  type Harness,
} from './helpers/harness.js';

const NEVER = '0 0 1 1 *'; // once a year: runs in these tests start through trigger

interface Seeded {
  phone: string;
  name: string;
  tags: string[];
  opted_in: boolean;
}

async function seedContacts(h: Harness, t: { id: string; key: string }, list: Seeded[]): Promise<void> {
  for (let i = 0; i < list.length; i += 1000) {
    const res = await h.request('PUT', `/routes/tenants/${t.id}/contacts`, { key: t.key, body: { contacts: list.slice(i, i + 1000) } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
}

async function createCampaign(h: Harness, t: { id: string; key: string }, body: Record<string, unknown>) {
  const res = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns`, {
    key: t.key,
    body: { name: 'Weekly pulse', cron: NEVER, timezone: 'UTC', message: { template: 'Hi {{name}}, how was your week?' }, ...body },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body as { id: string; schedule_id: string };
}

async function trigger(h: Harness, t: { id: string; key: string }, campaignId: string): Promise<string> {
  const res = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns/${campaignId}/trigger`, { key: t.key });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res.body.run_id;
}

async function runOf(h: Harness, t: { id: string; key: string }, campaignId: string, runId: string) {
  const res = await h.request('GET', `/routes/tenants/${t.id}/pulse/campaigns/${campaignId}/runs`, { key: t.key });
  assert.equal(res.status, 200);
  return (res.body.runs as any[]).find((r) => r.run_id === runId);
}

const finished = (h: Harness, t: { id: string; key: string }, campaignId: string, runId: string, timeoutMs = 60_000) =>
  waitFor(
    async () => {
      const run = await runOf(h, t, campaignId, runId);
      return run && run.status !== 'running' && run;
    },
    { timeoutMs, intervalMs: 200, what: `run ${runId} to finish` },
  );

const campaignMessages = async (h: Harness, t: { id: string; key: string }, phone: string) =>
  (await h.sandbox(t.id, t.key, phone)).filter((m: any) => m.text.startsWith('Hi '));

describe('pulse: contacts, campaigns, runs', () => {
  let h: Harness;
  let temporal: Client;
  let t: { id: string; key: string };

  before(async () => {
    h = await createHarness();
    temporal = await createTemporalClient({ address: testTemporalAddress(), namespace: 'default', keyring: testKeyring() });
    t = await h.createTenant();
  });
  after(async () => {
    await temporal.connection.close();
    await h.close();
  });

  it('upserts contacts encrypted, filters by tag, consent and phone, pages with a cursor', async () => {
    const phones = [uniquePhone(), uniquePhone(), uniquePhone()];
    const bad = await h.request('PUT', `/routes/tenants/${t.id}/contacts`, {
      key: t.key,
      body: { contacts: [{ phone: '0821234567', opted_in: true }] },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^body\.contacts\.0\.phone: must be an E\.164/);

    const res = await h.request('PUT', `/routes/tenants/${t.id}/contacts`, {
      key: t.key,
      body: {
        contacts: [
          {
            phone: phones[0],
            name: 'Ada Lovelace',
            tags: ['list-a', 'vip'],
            attributes: { city: 'London' },
            opted_in: true,
            consent_source: 'web_form',
          },
          { phone: phones[1], name: 'Bob', tags: ['list-a'], opted_in: false },
          { phone: phones[2], tags: ['list-a'], opted_in: true },
        ],
      },
    });
    assert.deepEqual(res.body, { upserted: 3 });
    const stored = await h.runtime.pool.query('SELECT phone_enc, name_enc FROM contacts WHERE tenant_id = $1', [t.id]);
    assert.ok(stored.rows.every((r) => !r.phone_enc.includes(phones[0].slice(1)) && r.name_enc !== 'Ada Lovelace'));

    const byPhone = await h.request('GET', `/routes/tenants/${t.id}/contacts?phone=${encodeURIComponent(phones[0])}`, { key: t.key });
    assert.equal(byPhone.body.contacts.length, 1);
    const ada = byPhone.body.contacts[0];
    assert.equal(ada.phone, phones[0]);
    assert.equal(ada.name, 'Ada Lovelace');
    assert.deepEqual(ada.attributes, { city: 'London' });
    assert.equal(ada.opted_in, true);
    assert.equal(ada.consent_source, 'web_form');

    // Same consent again: consent time and source stay; omitted tags stay.
    await h.request('PUT', `/routes/tenants/${t.id}/contacts`, { key: t.key, body: { contacts: [{ phone: phones[0], opted_in: true }] } });
    const again = (await h.request('GET', `/routes/tenants/${t.id}/contacts?phone=${encodeURIComponent(phones[0])}`, { key: t.key })).body
      .contacts[0];
    assert.equal(again.consent_at, ada.consent_at);
    assert.equal(again.consent_source, 'web_form');
    assert.deepEqual(again.tags, ['list-a', 'vip']);

    const unencoded = await h.request('GET', `/routes/tenants/${t.id}/contacts?phone=${phones[0]}`, { key: t.key });
    assert.deepEqual(
      unencoded.body.contacts.map((c: any) => c.id),
      [ada.id],
      'a raw "+" in the query string still finds the contact',
    );

    const vip = await h.request('GET', `/routes/tenants/${t.id}/contacts?tag=vip`, { key: t.key });
    assert.deepEqual(
      vip.body.contacts.map((c: any) => c.phone),
      [phones[0]],
    );
    const out = await h.request('GET', `/routes/tenants/${t.id}/contacts?tag=list-a&opted_in=false`, { key: t.key });
    assert.deepEqual(
      out.body.contacts.map((c: any) => c.phone),
      [phones[1]],
    );

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await h.request('GET', `/routes/tenants/${t.id}/contacts?tag=list-a&limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
        key: t.key,
      });
      seen.push(...page.body.contacts.map((c: any) => c.phone));
      cursor = page.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen.sort(), [...phones].sort());
  });

  it('rejects an invalid cron, an unknown time zone and a bad audience filter with 400 naming the field', async () => {
    const base = { name: 'x', cron: NEVER, timezone: 'UTC', message: { template: 'Hi' } };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cron: '61 * * * *' }, /^body\.cron: invalid cron expression: minute 61 is outside 0-59/],
      [{ cron: '* * *' }, /^body\.cron: invalid cron expression: must have 5 fields/],
      [{ timezone: 'Mars/Olympus_Mons' }, /^body\.timezone: must be an IANA time zone/],
      [{ audience: { tags: [''] } }, /^body\.audience\.tags\.0: must be a tag/],
      [{ audience: { tag: 'vip' } }, /^body\.audience: .*tag/],
      [{ audience: 'vip' }, /^body\.audience: /],
      [
        { message: { template: 'Hi', window_template: 'Not A Template' } },
        /^body\.message\.window_template: must be an approved WhatsApp template name/,
      ],
      [{ rate_per_second: 0 }, /^body\.rate_per_second: /],
    ];
    for (const [patch, expected] of cases) {
      const res = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns`, { key: t.key, body: { ...base, ...patch } });
      assert.equal(res.status, 400, JSON.stringify(patch));
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.match(res.body.error.message, expected);
    }
    const created = await createCampaign(h, t, {});
    const patch = await h.request('PATCH', `/routes/tenants/${t.id}/pulse/campaigns/${created.id}`, {
      key: t.key,
      body: { timezone: 'Nowhere/Atlantis' },
    });
    assert.equal(patch.status, 400);
    assert.match(patch.body.error.message, /^body\.timezone: /);
    const list = await h.request('GET', `/routes/tenants/${t.id}/pulse/campaigns`, { key: t.key });
    assert.equal(list.body.campaigns.length, 1, 'no campaign was created by a rejected request');
    const openapi = await h.request('GET', '/openapi.json');
    for (const p of [
      '/routes/tenants/{tenant_id}/contacts',
      '/routes/tenants/{tenant_id}/pulse/campaigns/{id}/trigger',
      '/routes/context/pulse-content',
    ]) {
      assert.ok(openapi.body.paths[p], `${p} in the OpenAPI document`);
    }
  });

  it('pause, resume, trigger, update and delete are reflected in the Temporal Schedule', async () => {
    const c = await createCampaign(h, t, { timezone: 'Africa/Johannesburg', audience: { tags: ['nobody-has-this'] } });
    assert.equal(c.schedule_id, `pulse/${t.id}/${c.id}`);
    const handle = temporal.schedule.getHandle(c.schedule_id);
    let d = await handle.describe();
    assert.equal(d.spec.timezone, 'Africa/Johannesburg');
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.state.paused, false);
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.workflowType, 'pulseCampaignWorkflow');

    const paused = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}/pause`, { key: t.key });
    assert.equal(paused.status, 200);
    assert.equal((await handle.describe()).state.paused, true);
    const shown = await h.request('GET', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}`, { key: t.key });
    assert.equal(shown.body.paused, true);
    assert.equal(shown.body.schedule.paused, true);

    const resumed = await h.request('POST', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}/resume`, { key: t.key });
    assert.equal(resumed.status, 200);
    assert.equal((await handle.describe()).state.paused, false);

    const runId = await trigger(h, t, c.id);
    assert.ok(runId.startsWith(c.schedule_id), runId);
    d = await handle.describe();
    const actions = [
      ...d.info.recentActions.map((a) => a.action.workflow.workflowId),
      ...d.info.runningActions.map((a) => a.workflow.workflowId),
    ];
    assert.ok(actions.includes(runId), 'the triggered run is one of the Schedule’s actions');
    const run = await finished(h, t, c.id, runId);
    assert.deepEqual([run.status, run.targeted, run.sent], ['completed', 0, 0]);

    const patched = await h.request('PATCH', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}`, {
      key: t.key,
      body: { cron: '30 8 * * MON', timezone: 'Europe/Berlin' },
    });
    assert.equal(patched.status, 200);
    d = await handle.describe();
    assert.equal(d.spec.timezone, 'Europe/Berlin');
    const next = d.info.nextActionTimes[0];
    assert.equal(
      new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Berlin',
        weekday: 'short',
        hour: '2-digit',
        minute: '2-digit',
        hour12: false,
      }).format(next),
      'Mon 08:30',
    );

    const del = await h.request('DELETE', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}`, { key: t.key });
    assert.equal(del.status, 204);
    await assert.rejects(handle.describe(), ScheduleNotFoundError);
    const gone = await h.request('GET', `/routes/tenants/${t.id}/pulse/campaigns/${c.id}`, { key: t.key });
    assert.equal(gone.status, 404);
  });

  it('a run reaches exactly the opted-in audience; closed windows get the approved template', async () => {
    const tenant = await h.createTenant();
    const people: Seeded[] = [
      ...Array.from({ length: 6 }, (_, i) => ({ phone: uniquePhone(), name: `Vip${i}`, tags: ['vip'], opted_in: true })),
      ...Array.from({ length: 3 }, (_, i) => ({ phone: uniquePhone(), name: `Out${i}`, tags: ['vip'], opted_in: false })),
      ...Array.from({ length: 3 }, (_, i) => ({ phone: uniquePhone(), name: `Other${i}`, tags: ['other'], opted_in: true })),
    ];
    await seedContacts(h, tenant, people);
    // One audience member wrote in recently: their window is open, so they get free-form text.
    const talker = people[0];
    const inbound = await h.inbound(tenant.key, {
      from: talker.phone,
      message: 'hello',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    assert.equal(inbound.status, 202);
    await waitFor(async () => (await h.sandbox(tenant.id, tenant.key, talker.phone)).length > 0);

    const c = await createCampaign(h, tenant, {
      audience: { tags: ['vip'] },
      message: {
        template: 'Hi {{name}}, how was your week?',
        window_template: 'weekly_pulse',
        variants: [{ tags: ['gold'], template: 'Hi {{name}}, gold news' }],
      },
      rate_per_second: 20,
    });
    const runId = await trigger(h, tenant, c.id);
    const run = await finished(h, tenant, c.id, runId);
    assert.deepEqual(
      {
        status: run.status,
        targeted: run.targeted,
        sent: run.sent,
        failed: run.failed,
        skipped_opted_out: run.skipped_opted_out,
        skipped_window: run.skipped_window,
      },
      { status: 'completed', targeted: 6, sent: 6, failed: 0, skipped_opted_out: 0, skipped_window: 0 },
    );
    for (const p of people) {
      const got = await campaignMessages(h, tenant, p.phone);
      if (p.opted_in && p.tags.includes('vip')) {
        assert.equal(got.length, 1, `${p.name} gets exactly one message`);
        assert.equal(got[0].text, `Hi ${p.name}, how was your week?`);
        assert.equal(got[0].template, p === talker ? null : 'weekly_pulse');
      } else {
        assert.equal(got.length, 0, `${p.name} is not in the audience`);
      }
    }

    // Without a window template, closed-window contacts are skipped and counted.
    const noTemplate = await createCampaign(h, tenant, { audience: { tags: ['vip'] }, rate_per_second: 50 });
    const second = await finished(h, tenant, noTemplate.id, await trigger(h, tenant, noTemplate.id));
    assert.deepEqual([second.targeted, second.sent, second.skipped_window], [6, 1, 5]);

    const content = await h.request('POST', '/routes/context/pulse-content', {
      key: tenant.key,
      body: {
        tenant_id: tenant.id,
        phone: talker.phone,
        template: 'Hi {{first_name}}',
        variants: [{ tags: ['vip'], template: 'Dear {{name}}, VIP offer' }],
      },
    });
    assert.equal(content.status, 200);
    assert.equal(content.body.content, `Dear ${talker.name}, VIP offer`);
    assert.equal(content.body.variant, 'variant:0');
  });

  it('STOP mid-run opts the contact out at once, is confirmed, and they get nothing more', async () => {
    const tenant = await h.createTenant();
    const people: Seeded[] = Array.from({ length: 40 }, (_, i) => ({ phone: uniquePhone(), name: `P${i}`, tags: [], opted_in: true }));
    await seedContacts(h, tenant, people);
    const c = await createCampaign(h, tenant, {
      message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      rate_per_second: 5,
    });
    // Contacts are sent in id order: the last one is reached after about eight seconds.
    const ids = await h.runtime.pool.query<{ id: string }>('SELECT id FROM contacts WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1', [
      tenant.id,
    ]);
    const last = (await h.request('GET', `/routes/tenants/${tenant.id}/contacts?limit=500`, { key: tenant.key })).body.contacts.find(
      (x: any) => x.id === ids.rows[0].id,
    );

    const runId = await trigger(h, tenant, c.id);
    await waitFor(async () => (await runOf(h, tenant, c.id, runId))?.sent >= 1, { timeoutMs: 30_000 });
    const overlap = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${c.id}/trigger`, { key: tenant.key });
    assert.equal(overlap.status, 409, 'skip policy: no second run while one is in progress');
    assert.equal(overlap.body.error.code, 'RUN_IN_PROGRESS');

    const stop = await h.inbound(tenant.key, {
      from: last.phone,
      message: 'Stop',
      tenant_id: tenant.id,
      timestamp: new Date().toISOString(),
    });
    assert.equal(stop.status, 202);
    const confirmation = await waitFor(async () => {
      const m = await h.sandbox(tenant.id, tenant.key, last.phone);
      return m.length > 0 && m;
    });
    assert.match(confirmation[0].text, /unsubscribed/);
    const during = await runOf(h, tenant, c.id, runId);
    assert.equal(during.status, 'running', 'the opt-out landed while the run was still going');

    const run = await finished(h, tenant, c.id, runId);
    assert.deepEqual([run.targeted, run.sent, run.skipped_opted_out], [40, 39, 1]);
    assert.equal((await h.sandbox(tenant.id, tenant.key, last.phone)).length, 1, 'only the confirmation');

    const contact = (
      await h.request('GET', `/routes/tenants/${tenant.id}/contacts?phone=${encodeURIComponent(last.phone)}`, { key: tenant.key })
    ).body.contacts[0];
    assert.equal(contact.opted_in, false);
    assert.equal(contact.consent_source, 'inbound_keyword');
    const history = await h.request('GET', `/routes/tenants/${tenant.id}/contacts/${contact.id}/export`, { key: tenant.key });
    assert.ok(
      history.body.consent_history.some(
        (e: { opted_in: boolean; source: string }) => e.opted_in === false && e.source === 'inbound_keyword',
      ),
      `the keyword opt-out is in the consent history: ${JSON.stringify(history.body.consent_history)}`,
    );
    // A CRM re-import cannot undo the customer's own opt-out.
    await seedContacts(h, tenant, [{ ...people[0], phone: last.phone, opted_in: true }]);
    const still = (
      await h.request('GET', `/routes/tenants/${tenant.id}/contacts?phone=${encodeURIComponent(last.phone)}`, { key: tenant.key })
    ).body.contacts[0];
    assert.equal(still.opted_in, false);
  });

  it('pausing stops a run in progress between two sends; resuming finishes it', async () => {
    const tenant = await h.createTenant();
    const people: Seeded[] = Array.from({ length: 30 }, (_, i) => ({ phone: uniquePhone(), name: `Z${i}`, tags: [], opted_in: true }));
    await seedContacts(h, tenant, people);
    const c = await createCampaign(h, tenant, {
      message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      rate_per_second: 10,
    });
    const runId = await trigger(h, tenant, c.id);
    await waitFor(async () => (await runOf(h, tenant, c.id, runId))?.sent >= 3, { timeoutMs: 30_000 });
    assert.equal((await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${c.id}/pause`, { key: tenant.key })).status, 200);
    const atPause = (await runOf(h, tenant, c.id, runId)).sent;
    await new Promise((r) => setTimeout(r, 1500));
    const settled = (await runOf(h, tenant, c.id, runId)).sent;
    assert.ok(settled - atPause <= 8, `stopped within about half a second of sends (${atPause} → ${settled})`);
    await new Promise((r) => setTimeout(r, 1500));
    const paused = await runOf(h, tenant, c.id, runId);
    assert.equal(paused.sent, settled, 'a paused run sends nothing');
    assert.equal(paused.status, 'running');
    const refused = await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${c.id}/trigger`, { key: tenant.key });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'CAMPAIGN_PAUSED');

    assert.equal((await h.request('POST', `/routes/tenants/${tenant.id}/pulse/campaigns/${c.id}/resume`, { key: tenant.key })).status, 200);
    const run = await finished(h, tenant, c.id, runId);
    assert.deepEqual([run.status, run.sent], ['completed', 30]);
    for (const p of people) assert.equal((await campaignMessages(h, tenant, p.phone)).length, 1);
  });

  it('a retried page sends nothing twice; a send left mid-flight is resent under the same idempotency key', async () => {
    const tenant = await h.createTenant();
    await seedContacts(
      h,
      tenant,
      Array.from({ length: 12 }, (_, i) => ({ phone: uniquePhone(), name: `R${i}`, tags: [], opted_in: true })),
    );
    const c = await createCampaign(h, tenant, {
      message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      rate_per_second: 200,
    });
    const acts = createPulseActivities({ db: h.runtime.db, keyring: h.runtime.keyring, providers: h.runtime.providers });
    const env = new MockActivityEnvironment();
    const config = (await env.run(acts.startPulseRun, {
      tenantId: tenant.id,
      campaignId: c.id,
      runId: `manual/${c.id}`,
    })) as PulseRunConfig | null;
    assert.ok(config);
    const page: PulsePageInput = { config, cursor: null, pageSize: 100, nextSendAt: 0 };
    const sendPage = async () => ((await env.run(acts.sendPulsePage, page)) as PulsePageResult).handled;
    assert.equal(await sendPage(), 12);
    assert.equal(await sendPage(), 0, 'a retried page finds nothing left to send');
    // As if a worker died between the provider call and recording it.
    await h.runtime.pool.query(
      `UPDATE campaign_sends SET status = 'sending' WHERE run_id = $1 AND contact_id = (SELECT contact_id FROM campaign_sends WHERE run_id = $1 LIMIT 1)`,
      [config.runId],
    );
    assert.equal(await sendPage(), 1);
    const sends = await h.runtime.pool.query(`SELECT status, count(*)::int AS n FROM campaign_sends WHERE run_id = $1 GROUP BY status`, [
      config.runId,
    ]);
    assert.deepEqual(sends.rows, [{ status: 'sent', n: 12 }]);
    const sandbox = await h.runtime.pool.query(
      'SELECT count(*)::int AS total, count(DISTINCT to_hash)::int AS people FROM sandbox_messages WHERE tenant_id = $1',
      [tenant.id],
    );
    assert.deepEqual(sandbox.rows[0], { total: 12, people: 12 });
  });

  it('a permanent provider rejection is recorded as failed; a transient error retries the page without duplicates', async () => {
    const tenant = await h.createTenant();
    const people: Seeded[] = Array.from({ length: 8 }, (_, i) => ({ phone: uniquePhone(), name: `F${i}`, tags: [], opted_in: true }));
    await seedContacts(h, tenant, people);
    const c = await createCampaign(h, tenant, {
      message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      rate_per_second: 200,
    });
    const [rejected, flaky] = [people[2].phone, people[5].phone];
    let flakyCalls = 0;
    const providers: Providers = {
      forChannel: (channel) => ({
        name: 'test',
        reconcileBy: 'resend',
        async sendText(m) {
          if (m.to === rejected)
            throw ApplicationFailure.create({ type: 'ProviderRejected', message: 'number not on WhatsApp', nonRetryable: true });
          if (m.to === flaky && flakyCalls++ === 0) throw new Error('socket hang up');
          return h.runtime.providers.forChannel(channel).sendText(m);
        },
      }),
    };
    const acts = createPulseActivities({ db: h.runtime.db, keyring: h.runtime.keyring, providers });
    const env = new MockActivityEnvironment();
    const config = (await env.run(acts.startPulseRun, {
      tenantId: tenant.id,
      campaignId: c.id,
      runId: `manual/${c.id}`,
    })) as PulseRunConfig | null;
    assert.ok(config);
    const page: PulsePageInput = { config, cursor: null, pageSize: 100, nextSendAt: 0 };
    await assert.rejects(env.run(acts.sendPulsePage, page), /socket hang up/);
    await env.run(acts.sendPulsePage, page);
    const counts = await h.runtime.pool.query(
      `SELECT status, error, count(*)::int AS n FROM campaign_sends WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1`,
      [config.runId],
    );
    assert.deepEqual(counts.rows, [
      { status: 'failed', error: 'ProviderRejected', n: 1 },
      { status: 'sent', error: null, n: 7 },
    ]);
    for (const p of people) assert.equal((await campaignMessages(h, tenant, p.phone)).length, p.phone === rejected ? 0 : 1);
  });

  it('tenant-configured keywords opt out too', async () => {
    const tenant = await h.createTenant();
    const set = await h.request('PUT', `/routes/tenants/${tenant.id}/pulse/settings`, {
      key: tenant.key,
      body: { opt_out_keywords: ['halt'], opt_out_confirmation: 'Done, no more messages.' },
    });
    assert.equal(set.status, 200);
    assert.deepEqual(set.body.opt_out_keywords, ['STOP', 'UNSUBSCRIBE', 'HALT']);
    const phone = uniquePhone();
    await seedContacts(h, tenant, [{ phone, name: 'Kim', tags: [], opted_in: true }]);
    await h.inbound(tenant.key, { from: phone, message: 'HALT!', tenant_id: tenant.id, timestamp: new Date().toISOString() });
    const m = await waitFor(async () => {
      const got = await h.sandbox(tenant.id, tenant.key, phone);
      return got.length > 0 && got;
    });
    assert.equal(m[0].text, 'Done, no more messages.');
    const c = (await h.request('GET', `/routes/tenants/${tenant.id}/contacts?phone=${encodeURIComponent(phone)}`, { key: tenant.key })).body
      .contacts[0];
    assert.equal(c.opted_in, false);
  });
});

describe('pulse: a worker killed mid-run', () => {
  let h: Harness;
  let child: ChildProcess | undefined;
  let dataDir: string;

  before(async () => {
    h = await createHarness({ worker: false });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'parley-pulse-worker-'));
  });
  after(async () => {
    child?.kill('SIGKILL');
    await h.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('messages each contact exactly once after SIGKILL and restart', async () => {
    child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        DATABASE_URL: h.databaseUrl,
        TEMPORAL_ADDRESS: testTemporalAddress(),
        TEMPORAL_TASK_QUEUE: h.config.TEMPORAL_TASK_QUEUE,
        PARLEY_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
        ADMIN_API_KEY: TEST_ADMIN_KEY,
        DATA_DIR: dataDir,
      },
    });
    const tenant = await h.createTenant();
    const n = 150;
    await seedContacts(
      h,
      tenant,
      Array.from({ length: n }, (_, i) => ({ phone: uniquePhone(), name: `K${i}`, tags: [], opted_in: true })),
    );
    const c = await createCampaign(h, tenant, {
      message: { template: 'Hi {{name}}', window_template: 'weekly_pulse' },
      rate_per_second: 25,
    });
    const runId = await trigger(h, tenant, c.id);
    await waitFor(async () => (await runOf(h, tenant, c.id, runId))?.sent >= 40, { timeoutMs: 60_000, what: '40 sends' });
    child.kill('SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
    const atKill = (await runOf(h, tenant, c.id, runId)).sent;
    assert.ok(atKill < n, 'the worker died mid-run');

    await h.startWorker();
    const run = await finished(h, tenant, c.id, runId, 120_000);
    assert.deepEqual([run.status, run.targeted, run.sent, run.failed], ['completed', n, n, 0]);
    const sandbox = await h.runtime.pool.query<{ total: number; people: number }>(
      'SELECT count(*)::int AS total, count(DISTINCT to_hash)::int AS people FROM sandbox_messages WHERE tenant_id = $1',
      [tenant.id],
    );
    assert.deepEqual(sandbox.rows[0], { total: n, people: n }, 'each contact messaged exactly once');
  });
});
