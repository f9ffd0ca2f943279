import type { Payload, PayloadCodec, SerializationContext } from '@temporalio/common';
import proto from '@temporalio/proto';
import { openBytes, type Keyring } from '../platform/crypto.js';
import { DATA_WORKER_ACTIVITY_PREFIX } from '../../contracts/data-lookup.js';

const { temporal } = proto;

const ENCODING = 'binary/encrypted';
/** The SDK's marker for `undefined`/`null`: carries no data, so there is nothing to forge in it. */
const NULL_ENCODING = 'binary/null';
const KEY_ID = 'encryption-key-id';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Before the tenant's data worker moved onto Parley's HTTP API, its lookups (activity ids
 * `data-worker/<tenant>/<uuid>`) were sealed with that tenant's data-worker key (key id
 * `dw:<tenant>`). Such payloads in older histories still open, but only for a lookup activity of
 * that same tenant: the tenant comes from the activity (its id is set by Parley's workflow), never
 * from the payload's own label. New payloads are always sealed with Parley's keys.
 */
const DATA_WORKER_KEY_PREFIX = 'dw:';

function dataWorkerTenant(context: SerializationContext | undefined): string | undefined {
  if (context?.type !== 'activity' || !context.activityId?.startsWith(DATA_WORKER_ACTIVITY_PREFIX)) return undefined;
  return context.activityId.slice(DATA_WORKER_ACTIVITY_PREFIX.length).split('/')[0] || undefined;
}

const wrapSealed = (keyId: string, data: Uint8Array): Payload => ({
  metadata: { encoding: utf8.encode(ENCODING), [KEY_ID]: utf8.encode(keyId) },
  data,
});

/** Thrown for a payload Parley did not seal; the SDK then fails the task instead of running it. */
export class PayloadRefusedError extends Error {
  override readonly name = 'PayloadRefusedError';
  readonly code = 'PAYLOAD_REFUSED';
}

/** The sealed parts of a payload, null for the SDK's empty marker; anything else is refused. */
function unwrap(payload: Payload): { keyId: string; data: Uint8Array } | null {
  const encoding = payload.metadata?.encoding ? fromUtf8.decode(payload.metadata.encoding) : undefined;
  if (encoding === NULL_ENCODING && !payload.data?.length) return null;
  if (encoding !== ENCODING) throw new PayloadRefusedError(`payload is not encrypted by Parley (encoding "${encoding ?? ''}")`);
  const keyId = payload.metadata?.[KEY_ID];
  if (!keyId || !payload.data) throw new PayloadRefusedError('encrypted payload without key id or data');
  return { keyId: fromUtf8.decode(keyId), data: payload.data };
}

const serializePayload = (payload: Payload) => temporal.api.common.v1.Payload.encode(payload).finish();
const deserialize = (plain: Uint8Array) => temporal.api.common.v1.Payload.decode(plain) as Payload;

/**
 * Encrypts every Temporal payload (workflow inputs, signals, activity inputs and results,
 * memos) with the keyring's primary AES-256-GCM key, so the Temporal server and its
 * database never hold message text or phone numbers. Older keys still decrypt.
 *
 * Decoding refuses plaintext (a signal forged with the `temporal` CLI fails its workflow task
 * and is never processed) and opens a data-worker-sealed payload only for a lookup activity of
 * that same tenant. `{ display: true }` is for the operators' codec endpoint, which only shows
 * payloads: it passes plaintext (the server's own markers) through and opens any tenant's.
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(
    private readonly keyring: Keyring,
    private readonly opts: { display?: boolean } = {},
  ) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const { keyId, data } = this.keyring.encryptBytes(serializePayload(payload));
      return wrapSealed(keyId, data);
    });
  }

  async decode(payloads: Payload[], context?: SerializationContext): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (this.opts.display && !isSealed(payload)) return payload;
      const sealed = unwrap(payload);
      if (!sealed) return payload;
      if (!sealed.keyId.startsWith(DATA_WORKER_KEY_PREFIX)) return deserialize(this.keyring.decryptBytes(sealed.keyId, sealed.data));
      const tenant = sealed.keyId.slice(DATA_WORKER_KEY_PREFIX.length);
      if (!this.opts.display && dataWorkerTenant(context) !== tenant) {
        throw new PayloadRefusedError(`payload sealed with key "${sealed.keyId}" outside a lookup activity of that tenant`);
      }
      return deserialize(openBytes(this.keyring.dataWorkerKey(tenant), sealed.data));
    });
  }
}

function isSealed(payload: Payload): boolean {
  return !!payload.metadata?.encoding && fromUtf8.decode(payload.metadata.encoding) === ENCODING;
}
