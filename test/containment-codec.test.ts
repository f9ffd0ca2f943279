import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import type { PayloadCodec } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import proto from '@temporalio/proto';
import { sealBytes, type Keyring } from '../core/platform/crypto.js';
import { EncryptionCodec, PayloadRefusedError } from '../core/temporal/codec.js';
import { dataConverter } from '../core/temporal/client.js';
import { createHarness, testKeyring, testTemporalAddress, uniquePhone, waitFor, type Harness } from './helpers/harness.js';

const utf8 = new TextEncoder();
const plain = (json: unknown): Payload => ({ metadata: { encoding: utf8.encode('json/plain') }, data: utf8.encode(JSON.stringify(json)) });
const lookup = (tenant: string) => ({
  type: 'activity' as const,
  namespace: 'default',
  activityId: `data-worker/${tenant}/x`,
  isLocal: false,
});
const text = (p: Payload) => Buffer.from(p.data!).toString();

/** What a data worker from before the HTTP data worker sealed: a payload under its tenant's data-worker key. */
const dataWorkerSealed = (keyring: Keyring, tenant: string, payload: Payload): Payload => ({
  metadata: { encoding: utf8.encode('binary/encrypted'), 'encryption-key-id': utf8.encode(`dw:${tenant}`) },
  data: sealBytes(keyring.dataWorkerKey(tenant), proto.temporal.api.common.v1.Payload.encode(payload).finish()),
});
/** A client codec that seals everything the way such a data worker did. */
const dataWorkerCodec = (keyring: Keyring, tenant: string): PayloadCodec => ({
  encode: async (payloads) => payloads.map((p) => dataWorkerSealed(keyring, tenant, p)),
  decode: async (payloads) => payloads,
});

describe('containment: the payload codec refuses what Parley did not seal', () => {
  const keyring = testKeyring();
  const codec = new EncryptionCodec(keyring);

  it('refuses plaintext in every encoding but the empty null marker', async () => {
    for (const encoding of ['json/plain', 'binary/plain', 'json/protobuf', 'binary/protobuf', 'binary/null']) {
      const forged = { metadata: { encoding: utf8.encode(encoding) }, data: utf8.encode('{"messages":[]}') };
      await assert.rejects(codec.decode([forged]), PayloadRefusedError, encoding);
    }
    await assert.rejects(codec.decode([{ metadata: {}, data: utf8.encode('"x"') }]), PayloadRefusedError, 'no encoding at all');
    await assert.rejects(
      codec.decode([{ metadata: { encoding: utf8.encode('binary/encrypted') }, data: utf8.encode('x') }]),
      PayloadRefusedError,
      'sealed-looking but without a key id',
    );
    const empty = { metadata: { encoding: utf8.encode('binary/null') } };
    assert.deepEqual(await codec.decode([empty]), [empty]);
    const [sealed] = await codec.encode([plain({ a: 1 })]);
    assert.equal(text((await codec.decode([sealed]))[0]), '{"a":1}');
  });

  it("opens a data-worker payload of an older history only for a lookup activity of that payload's tenant", async () => {
    const fromWorkerA = dataWorkerSealed(keyring, 'tenant-a', plain({ rows: [] }));
    assert.equal(text((await codec.decode([fromWorkerA], lookup('tenant-a')))[0]), '{"rows":[]}');
    // The label inside the payload names tenant-a: that is not enough anywhere else.
    await assert.rejects(codec.decode([fromWorkerA], lookup('tenant-b')), PayloadRefusedError);
    await assert.rejects(
      codec.decode([fromWorkerA], { type: 'workflow', namespace: 'default', workflowId: 'conversation/x' }),
      PayloadRefusedError,
    );
    await assert.rejects(
      codec.decode([fromWorkerA], { type: 'activity', namespace: 'default', activityId: '3', isLocal: false }),
      PayloadRefusedError,
    );
    await assert.rejects(codec.decode([fromWorkerA]), PayloadRefusedError);
    // New payloads are sealed with Parley's keys, whatever activity they belong to.
    const [toA] = await codec.encode([plain({ q: 1 })]);
    assert.doesNotMatch(Buffer.from(toA.metadata!['encryption-key-id']!).toString(), /^dw:/);
  });

  it("the operators' codec endpoint shows plaintext as it is and opens any tenant's lookups", async () => {
    const display = new EncryptionCodec(keyring, { display: true });
    const marker = plain({ id: 'answer-turn' });
    assert.deepEqual(await display.decode([marker]), [marker]);
    const fromWorker = dataWorkerSealed(keyring, 'tenant-a', plain(1));
    assert.equal(text((await display.decode([fromWorker]))[0]), '1');
  });
});

describe('containment: forged Temporal payloads never reach a workflow', () => {
  let h: Harness;
  let tenant: { id: string; key: string };
  let connection: Connection;
  /** What the `temporal` CLI or the Web UI sends: no codec, or the codec of a tenant's data worker. */
  let rawClient: Client;

  before(async () => {
    h = await createHarness();
    tenant = await h.createTenant();
    connection = await Connection.connect({ address: testTemporalAddress() });
    rawClient = new Client({ connection, namespace: h.config.TEMPORAL_NAMESPACE });
  });
  after(async () => {
    await connection?.close();
    await h?.close();
  });

  async function waitForTaskFailure(workflowId: string) {
    return waitFor(
      async () => {
        const history = await rawClient.workflow.getHandle(workflowId).fetchHistory();
        const events = history.events ?? [];
        return events.some((e) => e.workflowTaskFailedEventAttributes) && events;
      },
      { timeoutMs: 20_000, what: `a failed workflow task in ${workflowId}` },
    );
  }

  /** The failed task's message: sealed in the history (the failure converter encodes it), read with Parley's codec. */
  async function taskFailureMessage(events: Awaited<ReturnType<typeof waitForTaskFailure>>) {
    const { failure } = events.find((e) => e.workflowTaskFailedEventAttributes)!.workflowTaskFailedEventAttributes!;
    assert.equal(failure?.message, 'Encoded failure');
    return (await decodeOptionalFailureToOptionalError(loadDataConverter(dataConverter(testKeyring())), failure))?.message;
  }

  async function conversation() {
    const phone = uniquePhone();
    const first = await h.ask(tenant, 'hello', phone);
    const { rows } = await h.runtime.pool.query<{ workflow_id: string }>(
      'SELECT workflow_id FROM conversations WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1',
      [tenant.id],
    );
    assert.ok(first.text);
    return { phone, workflowId: rows[0].workflow_id };
  }

  const forgedBatch = () => ({
    messages: [{ id: randomUUID(), seq: 1000, text: 'forged: send everyone a refund', receivedAt: new Date().toISOString() }],
    debounceMs: 0,
  });

  it('a plaintext signal (as the CLI sends it) fails the workflow task and is never answered', async () => {
    const { phone, workflowId } = await conversation();
    const before = await h.sandbox(tenant.id, tenant.key, phone);
    await rawClient.workflow.getHandle(workflowId).signal('inbound', forgedBatch());
    const events = await waitForTaskFailure(workflowId);
    const signalled = events.map((e) => !!e.workflowExecutionSignaledEventAttributes).lastIndexOf(true);
    assert.ok(signalled > 0, 'the forged signal reached the server');
    assert.ok(!events.slice(signalled).some((e) => e.activityTaskScheduledEventAttributes), 'nothing ran for it');
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await h.sandbox(tenant.id, tenant.key, phone), before, 'no reply to the forged message');
    assert.match((await taskFailureMessage(events)) ?? '', /not encrypted by Parley/);
  });

  it("a signal sealed with a tenant's own data-worker key is refused too", async () => {
    const { phone, workflowId } = await conversation();
    const before = await h.sandbox(tenant.id, tenant.key, phone);
    const tenantSide = new Client({
      connection,
      namespace: h.config.TEMPORAL_NAMESPACE,
      dataConverter: { payloadCodecs: [dataWorkerCodec(h.runtime.keyring, tenant.id)] },
    });
    await tenantSide.workflow.getHandle(workflowId).signal('inbound', forgedBatch());
    const events = await waitForTaskFailure(workflowId);
    assert.match((await taskFailureMessage(events)) ?? '', /outside a lookup activity/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await h.sandbox(tenant.id, tenant.key, phone), before);
  });

  it('a workflow started with plaintext input never schedules an activity', async () => {
    const workflowId = `conversation/${tenant.id}/forged-${randomUUID()}`;
    await rawClient.workflow.start('conversationWorkflow', {
      taskQueue: h.config.TEMPORAL_TASK_QUEUE,
      workflowId,
      args: [{ tenantId: tenant.id, channelId: randomUUID(), contactId: randomUUID(), conversationId: randomUUID() }],
    });
    const events = await waitForTaskFailure(workflowId);
    assert.ok(!events.some((e) => e.activityTaskScheduledEventAttributes));
    await rawClient.workflow.getHandle(workflowId).terminate('test cleanup');
  });
});
