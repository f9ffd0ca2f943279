import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Keyring } from '../crypto.js';

const { temporal } = proto;

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Encrypts every Temporal payload (workflow inputs, signals, activity inputs and results,
 * memos) with the keyring's primary AES-256-GCM key, so the Temporal server and its
 * database never hold message text or phone numbers. Older keys still decrypt.
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: Keyring) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const { keyId, data } = this.keyring.encryptBytes(temporal.api.common.v1.Payload.encode(payload).finish());
      return { metadata: { encoding: utf8.encode(ENCODING), [KEY_ID]: utf8.encode(keyId) }, data };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.encoding;
      if (!encoding || fromUtf8.decode(encoding) !== ENCODING) return payload;
      const keyId = payload.metadata?.[KEY_ID];
      if (!keyId || !payload.data) throw new Error('encrypted payload without key id or data');
      const plain = this.keyring.decryptBytes(fromUtf8.decode(keyId), payload.data);
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}
