import type { Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import proto from '@temporalio/proto';
import { openBytes, sealBytes, type Keyring } from '../platform/crypto.js';
import { DATA_WORKER_ACTIVITY_PREFIX } from '../../contracts/data-lookup.js';

const { temporal } = proto;

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Lookups for a tenant's own data worker get activity ids `data-worker/<tenant>/<uuid>`; their
 * payloads are sealed with that tenant's data-worker key (key id `dw:<tenant>`), so the worker
 * the tenant runs needs that key only, never Parley's.
 */
const DATA_WORKER_KEY_PREFIX = 'dw:';

function dataWorkerTenant(context: SerializationContext | undefined): string | undefined {
  if (context?.type !== 'activity' || !context.activityId?.startsWith(DATA_WORKER_ACTIVITY_PREFIX)) return undefined;
  return context.activityId.slice(DATA_WORKER_ACTIVITY_PREFIX.length).split('/')[0] || undefined;
}

const wrap = (keyId: string, data: Uint8Array): Payload => ({
  metadata: { encoding: utf8.encode(ENCODING), [KEY_ID]: utf8.encode(keyId) },
  data,
});

function unwrap(payload: Payload): { keyId: string; data: Uint8Array } | undefined {
  const encoding = payload.metadata?.encoding;
  if (!encoding || fromUtf8.decode(encoding) !== ENCODING) return undefined;
  const keyId = payload.metadata?.[KEY_ID];
  if (!keyId || !payload.data) throw new Error('encrypted payload without key id or data');
  return { keyId: fromUtf8.decode(keyId), data: payload.data };
}

const serialize = (payload: Payload) => temporal.api.common.v1.Payload.encode(payload).finish();
const deserialize = (plain: Uint8Array) => temporal.api.common.v1.Payload.decode(plain) as Payload;

/**
 * Encrypts every Temporal payload (workflow inputs, signals, activity inputs and results,
 * memos) with the keyring's primary AES-256-GCM key, so the Temporal server and its
 * database never hold message text or phone numbers. Older keys still decrypt.
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: Keyring) {}

  async encode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    const tenant = dataWorkerTenant(context);
    return payloads.map((payload) => {
      if (tenant) return wrap(DATA_WORKER_KEY_PREFIX + tenant, sealBytes(this.keyring.dataWorkerKey(tenant), serialize(payload)));
      const { keyId, data } = this.keyring.encryptBytes(serialize(payload));
      return wrap(keyId, data);
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const sealed = unwrap(payload);
      if (!sealed) return payload;
      const plain = sealed.keyId.startsWith(DATA_WORKER_KEY_PREFIX)
        ? openBytes(this.keyring.dataWorkerKey(sealed.keyId.slice(DATA_WORKER_KEY_PREFIX.length)), sealed.data)
        : this.keyring.decryptBytes(sealed.keyId, sealed.data);
      return deserialize(plain);
    });
  }
}

/** The codec of a tenant's data worker: it holds that tenant's data-worker key and nothing else. */
export class DataWorkerCodec implements PayloadCodec {
  private readonly keyId: string;

  constructor(
    tenantId: string,
    private readonly key: Buffer,
  ) {
    this.keyId = DATA_WORKER_KEY_PREFIX + tenantId;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => wrap(this.keyId, sealBytes(this.key, serialize(payload))));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const sealed = unwrap(payload);
      if (!sealed) return payload;
      if (sealed.keyId !== this.keyId) throw new Error(`payload sealed with key "${sealed.keyId}", not this data worker's`);
      return deserialize(openBytes(this.key, sealed.data));
    });
  }
}
